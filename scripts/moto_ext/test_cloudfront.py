"""The emulator's CloudFront rules, on their own: an enabled distribution is not deleted, a
stale If-Match is refused, and every change gives a new ETag.

    target/test-services/moto/bin/python3 -m unittest scripts/moto_ext/test_cloudfront.py
"""

import json
import unittest
import urllib.request

from botocore.exceptions import ClientError
from test_backup import Server  # noqa: F401  (one way to start scripts/moto-server)


def config(enabled: bool) -> dict:
    origin = {"Id": "alb", "DomainName": "lb.example.com",
              "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"}}
    return {"CallerReference": "ref-1", "Comment": "t", "Enabled": enabled,
            "Origins": {"Quantity": 1, "Items": [origin]},
            "DefaultCacheBehavior": {"TargetOriginId": "alb", "ViewerProtocolPolicy": "redirect-to-https",
                                     "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"}}


class DistributionRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def code(self, call) -> str:
        with self.assertRaises(ClientError) as caught:
            call()
        return caught.exception.response["Error"]["Code"], caught.exception.response["ResponseMetadata"]["HTTPStatusCode"]

    def test_an_enabled_distribution_is_disabled_and_deployed_before_it_is_deleted(self):
        s = self.server
        urllib.request.urlopen(urllib.request.Request(f"{s.url}/moto-api/reset", method="POST"))
        # Changes deploy after two reads, as AWS's take minutes.
        body = json.dumps({"model_name": "cloudfront::distribution", "transition": {"progression": "manual", "times": 2}})
        urllib.request.urlopen(urllib.request.Request(f"{s.url}/moto-api/state-manager/set-transition",
                                                      data=body.encode(), method="POST"))
        cf = s.client("cloudfront")
        made = cf.create_distribution(DistributionConfig=config(True))
        dist_id, etag = made["Distribution"]["Id"], made["ETag"]
        self.assertEqual(self.code(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag)),
                         ("DistributionNotDisabled", 409))
        self.assertEqual(self.code(lambda: cf.update_distribution(Id=dist_id, IfMatch="stale",
                                                                  DistributionConfig=config(False))),
                         ("PreconditionFailed", 412))
        updated = cf.update_distribution(Id=dist_id, IfMatch=etag, DistributionConfig=config(False))
        self.assertNotEqual(updated["ETag"], etag)
        self.assertEqual(updated["Distribution"]["Status"], "InProgress")
        # Disabled, but not deployed yet: still refused.
        self.assertEqual(self.code(lambda: cf.delete_distribution(Id=dist_id, IfMatch=updated["ETag"])),
                         ("DistributionNotDisabled", 409))
        self.assertEqual(self.code(lambda: cf.delete_distribution(Id=dist_id, IfMatch=etag)),
                         ("PreconditionFailed", 412))
        while cf.get_distribution(Id=dist_id)["Distribution"]["Status"] != "Deployed":
            pass
        cf.delete_distribution(Id=dist_id, IfMatch=updated["ETag"])
        self.assertEqual(cf.list_distributions()["DistributionList"].get("Quantity"), 0)


if __name__ == "__main__":
    unittest.main()
