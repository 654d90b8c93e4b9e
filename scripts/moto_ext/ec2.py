"""A launch template version moto cannot launch from, fixed as AWS behaves.

Moto 5.2.5 keeps the user data of a template's first version as the base64 string type
its launcher asserts on, but the user data of a version made by CreateLaunchTemplateVersion
as a plain string: an Auto Scaling group on `$Latest` then fails every launch with an
internal error (HTTP 500). AWS launches from any version. `install` makes each new
version's user data the type the first version's is; nothing else changes.
"""

from moto.core.types import Base64EncodedString
from moto.ec2.models.launch_templates import LaunchTemplate
from moto.ec2.utils import parse_user_data


def install() -> None:
    original = LaunchTemplate.create_version

    def create_version(self, data, description):
        user_data = data.get("UserData")
        if user_data is not None and not isinstance(user_data, Base64EncodedString):
            data = dict(data, UserData=parse_user_data(user_data))
        return original(self, data, description)

    LaunchTemplate.create_version = create_version
