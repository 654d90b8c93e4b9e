"""The emulator's AWS Backup additions, on their own: a real scripts/moto-server and boto3
(whose request serialisation and response parsing follow botocore's model for `backup`).

    target/test-services/moto/bin/python3 -m unittest scripts/moto_ext/test_backup.py
"""

import json
import os
import socket
import subprocess
import time
import unittest
import urllib.request

import boto3
import botocore.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "eu-central-1"
TRUST_BACKUP = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
TRUST_EC2 = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


class Server:
    def __enter__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen([os.path.join(HERE, "..", "moto-server"), "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("scripts/moto-server did not start")
                time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()

    def client(self, service):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def run_schedule(self, rule):
        req = urllib.request.Request(f"{self.url}/_vc/backup/run-schedule", method="POST",
                                     data=json.dumps({"region": REGION, "rule": rule}).encode())
        return json.load(urllib.request.urlopen(req))["BackupJobs"]


def plan_doc(days=7):
    return {"BackupPlanName": "vcctl-fra", "Rules": [
        {"RuleName": "daily", "TargetBackupVaultName": "vcctl-fra", "ScheduleExpression": "cron(0 3 * * ? *)",
         "Lifecycle": {"DeleteAfterDays": days}}]}


class BackupAdditions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def setUp(self):
        s = self.server
        self.backup, self.ec2, self.iam = s.client("backup"), s.client("ec2"), s.client("iam")
        urllib.request.urlopen(urllib.request.Request(f"{s.url}/moto-api/reset", method="POST"))
        self.role = self.iam.create_role(RoleName="vcctl-fra-backup",
                                         AssumeRolePolicyDocument=json.dumps(TRUST_BACKUP))["Role"]["Arn"]
        self.data = self.volume({"vcctl:stack": "fra", "vcctl:role": "data"})
        self.other = self.volume({"vcctl:stack": "other", "vcctl:role": "data"})
        self.backup.create_backup_vault(BackupVaultName="vcctl-fra")
        self.plan = self.backup.create_backup_plan(BackupPlan=plan_doc())["BackupPlanId"]

    def volume(self, tags):
        v = self.ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=20, TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])
        return v["VolumeId"]

    def select(self, role=None, request_id=None):
        sel = {"SelectionName": "data", "IamRoleArn": role or self.role,
               "Resources": ["arn:aws:ec2:*:*:volume/*"],
               "Conditions": {"StringEquals": [
                   {"ConditionKey": "aws:ResourceTag/vcctl:stack", "ConditionValue": "fra"},
                   {"ConditionKey": "aws:ResourceTag/vcctl:role", "ConditionValue": "data"}]}}
        extra = {"CreatorRequestId": request_id} if request_id else {}
        return self.backup.create_backup_selection(BackupPlanId=self.plan, BackupSelection=sel, **extra)

    def test_selections_round_trip(self):
        made = self.select(request_id="once")
        again = self.select(request_id="once")
        self.assertEqual(made["SelectionId"], again["SelectionId"], "a retried request makes one selection")
        got = self.backup.get_backup_selection(BackupPlanId=self.plan, SelectionId=made["SelectionId"])
        self.assertEqual(got["BackupSelection"]["IamRoleArn"], self.role)
        self.assertEqual(len(got["BackupSelection"]["Conditions"]["StringEquals"]), 2)
        listed = self.backup.list_backup_selections(BackupPlanId=self.plan)["BackupSelectionsList"]
        self.assertEqual([x["SelectionName"] for x in listed], ["data"])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.backup.delete_backup_plan(BackupPlanId=self.plan)
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidRequestException")
        self.backup.delete_backup_selection(BackupPlanId=self.plan, SelectionId=made["SelectionId"])
        self.assertEqual(self.backup.list_backup_selections(BackupPlanId=self.plan)["BackupSelectionsList"], [])
        self.backup.delete_backup_plan(BackupPlanId=self.plan)
        # AWS lets the name be used again once the plan is deleted.
        self.backup.create_backup_plan(BackupPlan=plan_doc())

    def test_unknown_selection_and_bad_role_are_refused(self):
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.backup.get_backup_selection(BackupPlanId=self.plan, SelectionId="nope")
        self.assertEqual(e.exception.response["Error"]["Code"], "ResourceNotFoundException")
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.select(role="not-an-arn")
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidParameterValueException")

    def test_the_schedule_backs_up_what_the_selection_picks(self):
        self.select()
        jobs = self.server.run_schedule("daily")
        self.assertEqual([j["State"] for j in jobs], ["COMPLETED"])
        self.assertTrue(jobs[0]["ResourceArn"].endswith(self.data), "only the stack's data volume")
        points = self.backup.list_recovery_points_by_backup_vault(BackupVaultName="vcctl-fra")["RecoveryPoints"]
        self.assertEqual(len(points), 1)
        self.assertEqual(self.backup.describe_backup_vault(BackupVaultName="vcctl-fra")["NumberOfRecoveryPoints"], 1)
        p = points[0]
        self.assertEqual(p["CreatedBy"]["BackupPlanId"], self.plan)
        self.assertEqual(p["Lifecycle"]["DeleteAfterDays"], 7)
        snap = p["RecoveryPointArn"].rsplit("/", 1)[-1]
        tags = {t["Key"]: t["Value"] for t in self.ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["Tags"]}
        self.assertEqual(tags["vcctl:stack"], "fra", "an EBS recovery point carries the volume's tags")
        job = self.backup.describe_backup_job(BackupJobId=jobs[0]["BackupJobId"])
        self.assertEqual(job["RecoveryPointArn"], p["RecoveryPointArn"])
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.backup.delete_backup_vault(BackupVaultName="vcctl-fra")
        self.assertIn("contains 1 recovery points", str(e.exception))
        self.backup.delete_recovery_point(BackupVaultName="vcctl-fra", RecoveryPointArn=p["RecoveryPointArn"])
        self.assertEqual(self.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snap]}])["Snapshots"], [])
        self.backup.delete_backup_vault(BackupVaultName="vcctl-fra")

    def test_a_role_aws_backup_cannot_assume_fails_the_job(self):
        wrong = self.iam.create_role(RoleName="ec2-only", AssumeRolePolicyDocument=json.dumps(TRUST_EC2))["Role"]["Arn"]
        self.select(role=wrong)
        jobs = self.server.run_schedule("daily")
        self.assertEqual([j["State"] for j in jobs], ["FAILED"])
        self.assertIn("backup.amazonaws.com", jobs[0]["StatusMessage"])
        self.assertEqual(self.backup.list_recovery_points_by_backup_vault(BackupVaultName="vcctl-fra")["RecoveryPoints"], [])

    def test_a_vault_lock_keeps_recovery_points(self):
        self.backup.put_backup_vault_lock_configuration(BackupVaultName="vcctl-fra", MinRetentionDays=7)
        self.select()
        arn = self.server.run_schedule("daily")[0]["RecoveryPointArn"]
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            self.backup.delete_recovery_point(BackupVaultName="vcctl-fra", RecoveryPointArn=arn)
        self.assertIn("vault lock", str(e.exception))
        # A rule that keeps points fewer days than the lock fails its jobs.
        self.backup.update_backup_plan(BackupPlanId=self.plan, BackupPlan=plan_doc(days=3))
        self.assertEqual([j["State"] for j in self.server.run_schedule("daily")], ["FAILED"])

    def test_tags_are_listed_with_and_without_a_trailing_slash(self):
        arn = self.backup.describe_backup_vault(BackupVaultName="vcctl-fra")["BackupVaultArn"]
        self.backup.tag_resource(ResourceArn=arn, Tags={"vcctl:stack": "fra"})
        self.assertEqual(self.backup.list_tags(ResourceArn=arn)["Tags"], {"vcctl:stack": "fra"})
        signed = urllib.request.Request(f"{self.server.url}/tags/{arn}")
        # The Rust SDK's form, without the trailing slash, signed as boto3 would sign it.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        req = AWSRequest(method="GET", url=f"{self.server.url}/tags/{arn}")
        SigV4Auth(boto3.Session("testing", "testing").get_credentials(), "backup", REGION).add_auth(req)
        signed.headers.update(dict(req.headers))
        self.assertEqual(json.load(urllib.request.urlopen(signed))["Tags"], {"vcctl:stack": "fra"})

    def test_update_plan_makes_a_new_version(self):
        before = self.backup.get_backup_plan(BackupPlanId=self.plan)
        self.backup.update_backup_plan(BackupPlanId=self.plan, BackupPlan=plan_doc(days=9))
        after = self.backup.get_backup_plan(BackupPlanId=self.plan)
        self.assertNotEqual(before["VersionId"], after["VersionId"])
        self.assertEqual(after["BackupPlan"]["Rules"][0]["Lifecycle"]["DeleteAfterDays"], 9)

    def test_on_demand_job(self):
        job = self.backup.start_backup_job(
            BackupVaultName="vcctl-fra", IamRoleArn=self.role,
            ResourceArn=f"arn:aws:ec2:{REGION}:123456789012:volume/{self.data}")
        self.assertEqual(self.backup.describe_backup_job(BackupJobId=job["BackupJobId"])["State"], "COMPLETED")
        points = self.backup.list_recovery_points_by_backup_vault(BackupVaultName="vcctl-fra")["RecoveryPoints"]
        self.assertNotIn("CreatedBy", points[0], "an on-demand job belongs to no plan")


if __name__ == "__main__":
    unittest.main()
