"""The emulator's EC2 fixes, on their own: an Auto Scaling group on `$Latest` launches from
a version made by CreateLaunchTemplateVersion, with that version's tags; a prefix-list rule
keeps its description.

    target/test-services/moto/bin/python3 -m unittest scripts/moto_ext/test_ec2.py
"""

import base64
import unittest
import urllib.request

from test_backup import Server  # noqa: F401  (one way to start scripts/moto-server)


class PrefixListRules(unittest.TestCase):
    def test_a_prefix_list_rule_keeps_its_description_as_a_network_rule_does(self):
        with Server() as s:
            ec2 = s.client("ec2")
            vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
            group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
            lists = ec2.describe_managed_prefix_lists()["PrefixLists"]
            cloudfront = next(p["PrefixListId"] for p in lists
                              if p["PrefixListName"] == "com.amazonaws.global.cloudfront.origin-facing")
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                 "PrefixListIds": [{"PrefixListId": cloudfront, "Description": "from CloudFront"}]},
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "a network"}]}])
            rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
            got = sorted((r.get("PrefixListId") or r.get("CidrIpv4"), r.get("Description"))
                         for r in rules["SecurityGroupRules"] if not r["IsEgress"])
            self.assertEqual(got, [("10.0.0.0/8", "a network"), (cloudfront, "from CloudFront")])


class LaunchTemplateVersions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def test_a_group_launches_from_a_later_version_with_its_tags(self):
        s = self.server
        urllib.request.urlopen(urllib.request.Request(f"{s.url}/moto-api/reset", method="POST"))
        ec2, asg = s.client("ec2"), s.client("autoscaling")
        data = lambda tag: {  # noqa: E731
            "ImageId": "ami-12c6146b", "InstanceType": "t3.small",
            "UserData": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "vcctl:config", "Value": tag}]}]}
        lt = ec2.create_launch_template(LaunchTemplateName="t", LaunchTemplateData=data("one"))
        tid = lt["LaunchTemplate"]["LaunchTemplateId"]
        asg.create_auto_scaling_group(AutoScalingGroupName="g", MinSize=1, MaxSize=3, DesiredCapacity=1,
                                      LaunchTemplate={"LaunchTemplateId": tid, "Version": "$Latest"},
                                      AvailabilityZones=["eu-central-1a"])
        ec2.create_launch_template_version(LaunchTemplateId=tid, LaunchTemplateData=data("two"))
        asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=2)
        ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]]
        self.assertEqual(len(ids), 2)
        tags = {}
        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]:
            for i in r["Instances"]:
                tags[i["InstanceId"]] = {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get("vcctl:config")
        self.assertEqual(sorted(tags.values()), ["one", "two"], "each instance carries its version's tag")


if __name__ == "__main__":
    unittest.main()
