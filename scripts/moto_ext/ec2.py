"""Two things of EC2 moto 5.2.5 does not do as AWS does, fixed as AWS behaves.

A prefix-list rule's description: AWS keeps the `Description` given with a `PrefixListId`
(AuthorizeSecurityGroupIngress) and answers it in DescribeSecurityGroupRules, as it does a
network's; moto drops it, so a tool that compares rules by their descriptions sees its own
rule as drift on every run.

A launch template version moto cannot launch from: moto keeps the user data of a template's first version as the base64 string type
its launcher asserts on, but the user data of a version made by CreateLaunchTemplateVersion
as a plain string: an Auto Scaling group on `$Latest` then fails every launch with an
internal error (HTTP 500). AWS launches from any version. `install` makes each new
version's user data the type the first version's is; nothing else changes.
"""

from moto.core.types import Base64EncodedString
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.ec2.utils import parse_user_data


def install() -> None:
    keep_prefix_list_descriptions()
    original = LaunchTemplate.create_version

    def create_version(self, data, description):
        user_data = data.get("UserData")
        if user_data is not None and not isinstance(user_data, Base64EncodedString):
            data = dict(data, UserData=parse_user_data(user_data))
        return original(self, data, description)

    LaunchTemplate.create_version = create_version


def keep_prefix_list_descriptions() -> None:
    original = SecurityGroupRule.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        given = kwargs.get("prefix_list_id", args[7] if len(args) > 7 else None)
        self.prefix_list_description = (given or {}).get("Description")

    def description(self):
        return self.ip_range.get("Description") or getattr(self, "prefix_list_description", None)

    SecurityGroupRule.__init__ = __init__
    SecurityGroupRule.description = property(description)
