"""The emulator's Route 53 rules, on their own: a DELETE takes exactly the record it names,
and a batch that would leave a name with a simple record beside routed ones is refused
whole, while one that swaps them is taken.

    target/test-services/moto/bin/python3 -m unittest scripts/moto_ext/test_route53.py
"""

import unittest

from botocore.exceptions import ClientError
from test_backup import Server


def routed(name: str, region: str, ip: str) -> dict:
    return {"Name": name, "Type": "A", "SetIdentifier": region, "Region": region, "TTL": 60,
            "ResourceRecords": [{"Value": ip}]}


def simple(name: str, ip: str) -> dict:
    return {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": ip}]}


class ChangeBatches(unittest.TestCase):
    def test_deletes_are_exact_and_a_name_is_never_simple_and_routed_at_once(self):
        with Server() as s:
            r53 = s.client("route53")
            zone = r53.create_hosted_zone(Name="example.com", CallerReference="t")["HostedZone"]["Id"]

            def change(*changes):
                batch = {"Changes": [{"Action": a, "ResourceRecordSet": r} for a, r in changes]}
                r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)

            def names():
                sets = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
                return sorted((r["Name"], r.get("SetIdentifier")) for r in sets if r["Type"] == "A")

            change(("CREATE", routed("api.example.com", "eu-central-1", "192.0.2.1")),
                   ("CREATE", routed("origin.api.example.com", "eu-central-1", "192.0.2.1")))
            change(("DELETE", routed("origin.api.example.com", "eu-central-1", "192.0.2.1")))
            self.assertEqual(names(), [("api.example.com.", "eu-central-1")], "the other name's record stays")
            with self.assertRaises(ClientError) as refused:
                change(("CREATE", simple("api.example.com", "192.0.2.9")))
            self.assertEqual(refused.exception.response["Error"]["Code"], "InvalidChangeBatch")
            self.assertEqual(names(), [("api.example.com.", "eu-central-1")], "refused whole")
            change(("DELETE", routed("api.example.com", "eu-central-1", "192.0.2.1")),
                   ("CREATE", simple("api.example.com", "192.0.2.9")))
            self.assertEqual(names(), [("api.example.com.", None)], "swapped in one batch")
            change(("CREATE", simple("www.example.com", "192.0.2.7")))
            change(("DELETE", simple("api.example.com", "192.0.2.9")))
            self.assertEqual(names(), [("www.example.com.", None)])


if __name__ == "__main__":
    unittest.main()
