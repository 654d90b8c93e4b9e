"""moto_server with the additions under scripts/moto_ext (backup.py, cloudfront.py, ec2.py, route53.py), and one route of
the emulator's own, as moto has its `/moto-api/`:

  POST /_vc/backup/run-schedule   {"rule": "daily", "region": "eu-central-1"[, "account": "…"]}

runs that rule of every backup plan now, as AWS's scheduler would when its time comes, and
answers the backup jobs it ran.
"""

import json
import sys

import moto.server
from moto.core import DEFAULT_ACCOUNT_ID
from werkzeug.wrappers import Request, Response

from moto_ext import backup, cloudfront, ec2, route53


class Dispatcher(moto.server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_vc/backup/run-schedule":
            body = json.loads(Request(environ).get_data() or b"{}")
            jobs = backup.run_schedule(body.get("account", DEFAULT_ACCOUNT_ID), body["region"], body["rule"])
            return Response(json.dumps({"BackupJobs": jobs}), mimetype="application/json")(environ, start_response)
        return super().__call__(environ, start_response)


def main() -> None:
    backup.install()
    cloudfront.install()
    route53.install()
    ec2.install()
    moto.server.DomainDispatcherApplication = Dispatcher
    moto.server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
