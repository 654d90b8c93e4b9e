"""AWS Backup calls moto 5.2.5 lacks, added to its backup backend faithfully.

Moto has vaults, plans and vault locks but no backup selections, no plan updates, no backup
jobs and no recovery points. This module adds them, with request and response shapes from
botocore's service model for `backup` (the operation is routed by botocore's own router, so
only the handlers are new), and the rules AWS applies that vcctl relies on:

- a plan with selections cannot be deleted; a deleted plan's name can be used again;
- a vault that holds recovery points cannot be deleted;
- a recovery point in a locked vault cannot be deleted before `MinRetentionDays`;
- a backup job runs as the selection's role, which must exist and trust
  backup.amazonaws.com, else the job FAILS (as it does on AWS);
- `ListTags` answers for `/tags/{arn}` as well as `/tags/{arn}/` (moto reads the
  trailing-slash form only, which the Rust SDK no longer sends);
- an EBS recovery point is an EBS snapshot (`arn:aws:ec2:<region>::snapshot/snap-…`) that
  carries the volume's tags.

AWS runs a plan's rules on their schedule. An emulator has no clock worth waiting for, so
`run_schedule` runs one rule now for every resource its plan's selections pick (their
`Resources` ARNs and tag `Conditions`), as the scheduler would: the server wrapper
(scripts/moto-server) exposes it as `POST /_vc/backup/run-schedule`.
"""

import fnmatch
import json
import time
from typing import Any
from urllib.parse import unquote

from moto.backup import urls as backup_urls
from moto.backup.exceptions import (
    InvalidParameterValueException,
    InvalidRequestException,
    ResourceNotFoundException,
)
from moto.backup.models import BackupBackend, Plan, backup_backends
from moto.backup.responses import BackupResponse
from moto.core.responses import EmptyResult
from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.moto_api._internal import mock_random

# The paths moto's backup urls.py does not route (selections live under the plan's
# path, which it already routes).
EXTRA_PATHS = {
    "{0}/backup-jobs/?$": BackupResponse.dispatch,
    "{0}/backup-jobs/(?P<job>[^/]+)$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/(?P<arn>.+)$": BackupResponse.dispatch,
}

DAY = 24 * 60 * 60


def _state(backend: BackupBackend) -> dict[str, Any]:
    """What this module keeps per account and region, beside moto's own state."""
    if not hasattr(backend, "vc_selections"):
        backend.vc_selections = {}  # selection id -> dict
        backend.vc_recovery_points = {}  # vault name -> {arn: dict}
        backend.vc_jobs = {}  # job id -> dict
    return backend.__dict__


def _plan(backend: BackupBackend, plan_id: str) -> Plan:
    plan = backend.plans.get(plan_id)
    if plan is None or plan.deletion_date is not None:
        raise ResourceNotFoundException(msg=f"Failed reading Backup plan with provided version: {plan_id}")
    return plan


# --- selections -------------------------------------------------------------------------


def create_selection(backend: BackupBackend, plan_id: str, selection: dict, request_id: str | None) -> dict:
    _plan(backend, plan_id)
    name = selection.get("SelectionName") or ""
    role = selection.get("IamRoleArn") or ""
    if not (1 <= len(name) <= 50):
        raise InvalidParameterValueException(msg="SelectionName must contain 1 to 50 characters")
    if not role.startswith("arn:aws:iam::") or ":role/" not in role:
        raise InvalidParameterValueException(msg=f"Invalid IAM role ARN: {role}")
    state = _state(backend)
    for s in state["vc_selections"].values():
        if s["BackupPlanId"] == plan_id and request_id and s.get("CreatorRequestId") == request_id:
            return s  # the same request retried: the same selection
    sid = str(mock_random.uuid4())
    s = {
        "SelectionId": sid,
        "BackupPlanId": plan_id,
        "CreationDate": time.time(),
        "BackupSelection": selection,
    }
    if request_id:
        s["CreatorRequestId"] = request_id
    state["vc_selections"][sid] = s
    return s


def selection(backend: BackupBackend, plan_id: str, sid: str) -> dict:
    s = _state(backend)["vc_selections"].get(sid)
    if s is None or s["BackupPlanId"] != plan_id:
        raise ResourceNotFoundException(msg=f"Failed reading Backup selection {sid} of plan {plan_id}")
    return s


def selections_of(backend: BackupBackend, plan_id: str) -> list[dict]:
    _plan(backend, plan_id)
    return [s for s in _state(backend)["vc_selections"].values() if s["BackupPlanId"] == plan_id]


# --- plans ------------------------------------------------------------------------------


def create_plan(original, self: BackupBackend, backup_plan, backup_plan_tags, creator_request_id) -> Plan:
    # AWS lets a deleted plan's name be used again; moto compares with deleted plans too.
    deleted = {k: p for k, p in self.plans.items() if p.deletion_date is not None}
    for k in deleted:
        del self.plans[k]
    try:
        return original(self, backup_plan, backup_plan_tags, creator_request_id)
    finally:
        self.plans.update(deleted)


def delete_plan(original, self: BackupBackend, backup_plan_id: str):
    if any(s["BackupPlanId"] == backup_plan_id for s in _state(self)["vc_selections"].values()):
        raise InvalidRequestException(msg="Related backup plan selections must be deleted prior to backup plan deletion")
    return original(self, backup_plan_id)


def update_plan(backend: BackupBackend, plan_id: str, backup_plan: dict) -> Plan:
    plan = _plan(backend, plan_id)
    fresh = Plan(backup_plan=backup_plan, creator_request_id=plan.creator_request_id, backend=backend)
    plan.backup_plan = fresh.backup_plan
    plan.advanced_backup_settings = fresh.advanced_backup_settings
    plan.version_id = fresh.version_id
    return plan


# --- vaults and recovery points ---------------------------------------------------------


def delete_vault(original, self: BackupBackend, name: str) -> None:
    points = _state(self)["vc_recovery_points"].get(name, {})
    if points:
        raise InvalidRequestException(msg=f"Backup vault cannot be deleted (contains {len(points)} recovery points)")
    return original(self, name)


def _vault(backend: BackupBackend, name: str):
    if name not in backend.vaults:
        raise ResourceNotFoundException(msg=f"Backup vault {name} does not exist")
    return backend.vaults[name]


def _count(vault, n: int) -> None:
    # ListBackupVaults reads `num_of_recovery_points`; DescribeBackupVault serialises the
    # vault by the model's member names (`number_of_recovery_points`).
    vault.num_of_recovery_points = n
    vault.number_of_recovery_points = n


def recovery_points(backend: BackupBackend, vault: str) -> list[dict]:
    _vault(backend, vault)
    return list(_state(backend)["vc_recovery_points"].get(vault, {}).values())


def delete_recovery_point(backend: BackupBackend, vault_name: str, arn: str) -> None:
    vault = _vault(backend, vault_name)
    points = _state(backend)["vc_recovery_points"].get(vault_name, {})
    point = points.get(arn)
    if point is None:
        raise ResourceNotFoundException(msg=f"Recovery point {arn} does not exist in vault {vault_name}")
    if vault.locked and vault.min_retention_days:
        until = point["CreationDate"] + vault.min_retention_days * DAY
        if time.time() < until:
            raise InvalidRequestException(
                msg=f"Recovery point {arn} is protected by the vault lock of {vault_name} "
                f"(MinRetentionDays {vault.min_retention_days}) until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(until))}"
            )
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    ec2.delete_snapshot(arn.rsplit("/", 1)[-1])
    del points[arn]
    _count(vault, len(points))


def _role_failure(backend: BackupBackend, role_arn: str) -> str | None:
    """Why AWS Backup could not assume `role_arn`, or None when it can."""
    try:
        role = iam_backends[backend.account_id]["global"].get_role_by_arn(role_arn)
    except Exception:
        return f"IAM role {role_arn} does not exist"
    trust = role.assume_role_policy_document
    trust = trust if isinstance(trust, str) else json.dumps(trust)
    if "backup.amazonaws.com" not in unquote(trust):
        return f"IAM role {role_arn} cannot be assumed by AWS Backup (its trust policy does not name backup.amazonaws.com)"
    return None


def start_backup_job(backend: BackupBackend, vault_name: str, resource_arn: str, role_arn: str,
                     lifecycle: dict | None, created_by: dict | None = None) -> dict:
    vault = _vault(backend, vault_name)
    if ":volume/" not in resource_arn:
        raise InvalidParameterValueException(msg=f"This emulator backs up EBS volumes only, not {resource_arn}")
    job_id = str(mock_random.uuid4()).upper()
    now = time.time()
    job = {"BackupJobId": job_id, "BackupVaultName": vault_name, "BackupVaultArn": vault.backup_vault_arn,
           "ResourceArn": resource_arn, "ResourceType": "EBS", "IamRoleArn": role_arn, "CreationDate": now}
    if created_by:
        job["CreatedBy"] = created_by
    _state(backend)["vc_jobs"][job_id] = job
    why = _role_failure(backend, role_arn)
    if why is None and lifecycle and vault.locked and vault.min_retention_days:
        if lifecycle.get("DeleteAfterDays", vault.min_retention_days) < vault.min_retention_days:
            why = f"the lifecycle keeps it fewer days than the vault lock's MinRetentionDays ({vault.min_retention_days})"
    if why:
        job.update(State="FAILED", StatusMessage=why)
        return job
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    volume_id = resource_arn.rsplit("/", 1)[-1]
    snap = ec2.create_snapshot(volume_id, "This snapshot is created by the AWS Backup service.")
    tags = dict(ec2.tags.get(volume_id, {}))
    tags["aws:backup:source-resource"] = f"{volume_id}:{job_id}"
    ec2.create_tags([snap.id], tags)
    arn = f"arn:aws:ec2:{backend.region_name}::snapshot/{snap.id}"
    point = {"RecoveryPointArn": arn, "BackupVaultName": vault_name, "BackupVaultArn": vault.backup_vault_arn,
             "ResourceArn": resource_arn, "ResourceType": "EBS", "IamRoleArn": role_arn, "Status": "COMPLETED",
             "CreationDate": now, "CompletionDate": now, "BackupSizeInBytes": snap.volume.size * 1024**3,
             "IsEncrypted": bool(snap.encrypted), "StorageClass": "WARM"}
    if created_by:
        point["CreatedBy"] = created_by
    if lifecycle:
        point["Lifecycle"] = lifecycle
        if "DeleteAfterDays" in lifecycle:
            point["CalculatedLifecycle"] = {"DeleteAt": now + lifecycle["DeleteAfterDays"] * DAY}
    _state(backend)["vc_recovery_points"].setdefault(vault_name, {})[arn] = point
    _count(vault, len(_state(backend)["vc_recovery_points"][vault_name]))
    job.update(State="COMPLETED", CompletionDate=now, RecoveryPointArn=arn, PercentDone="100.0")
    return job


# --- the scheduler ----------------------------------------------------------------------


def _picks(backend: BackupBackend, sel: dict) -> list[str]:
    """The EBS volumes (ARNs) a selection picks: its Resources ARNs (wildcards allowed),
    narrowed by its tag Conditions (all must hold), or its ListOfTags (any may hold)."""
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    out = []
    for vid in sorted(ec2.volumes):
        arn = f"arn:aws:ec2:{backend.region_name}:{backend.account_id}:volume/{vid}"
        tags = ec2.tags.get(vid, {})
        resources = sel.get("Resources") or []
        if resources and not any(fnmatch.fnmatchcase(arn, r) for r in resources):
            continue
        if not resources and not sel.get("ListOfTags"):
            continue
        cond = sel.get("Conditions") or {}
        key = lambda c: c["ConditionKey"].removeprefix("aws:ResourceTag/")  # noqa: E731
        ok = all(tags.get(key(c)) == c["ConditionValue"] for c in cond.get("StringEquals", []))
        ok = ok and all(tags.get(key(c)) != c["ConditionValue"] for c in cond.get("StringNotEquals", []))
        ok = ok and all(fnmatch.fnmatchcase(tags.get(key(c), ""), c["ConditionValue"]) for c in cond.get("StringLike", []))
        listed = sel.get("ListOfTags") or []
        if listed:
            ok = ok and any(tags.get(t["ConditionKey"]) == t["ConditionValue"] for t in listed)
        if ok:
            out.append(arn)
    return out


def run_schedule(account: str, region: str, rule_name: str) -> list[dict]:
    """Runs the rule `rule_name` of every live plan now, as AWS's scheduler does when its
    schedule comes; the backup jobs it ran."""
    backend = backup_backends[account][region]
    jobs = []
    for plan in list(backend.plans.values()):
        if plan.deletion_date is not None:
            continue
        for rule in plan.backup_plan.get("Rules", []):
            if rule.get("RuleName") != rule_name:
                continue
            created_by = {"BackupPlanId": plan.backup_plan_id, "BackupPlanArn": plan.backup_plan_arn,
                          "BackupPlanVersion": plan.version_id, "BackupRuleId": rule.get("RuleId")}
            for sel in _state(backend)["vc_selections"].values():
                if sel["BackupPlanId"] != plan.backup_plan_id:
                    continue
                for arn in _picks(backend, sel["BackupSelection"]):
                    jobs.append(start_backup_job(backend, rule["TargetBackupVaultName"], arn,
                                                 sel["BackupSelection"]["IamRoleArn"], rule.get("Lifecycle"),
                                                 created_by))
    return jobs


# --- the HTTP handlers (named as moto's dispatch looks them up: the operation in snake case) ---


def _uri(self, name: str) -> str:
    return unquote(self.uri_match[name])


def _create_backup_selection(self) -> str:
    body = json.loads(self.body or "{}")
    s = create_selection(self.backup_backend, _uri(self, "backupPlanId"), body.get("BackupSelection") or {},
                         body.get("CreatorRequestId"))
    return json.dumps({k: s[k] for k in ("SelectionId", "BackupPlanId", "CreationDate")})


def _get_backup_selection(self) -> str:
    return json.dumps(selection(self.backup_backend, _uri(self, "backupPlanId"), _uri(self, "selectionId")))


def _list_backup_selections(self) -> str:
    out = []
    for s in selections_of(self.backup_backend, _uri(self, "backupPlanId")):
        item = {k: v for k, v in s.items() if k != "BackupSelection"}
        item["SelectionName"] = s["BackupSelection"]["SelectionName"]
        item["IamRoleArn"] = s["BackupSelection"]["IamRoleArn"]
        out.append(item)
    return json.dumps({"BackupSelectionsList": out})


def _delete_backup_selection(self) -> EmptyResult:
    backend = self.backup_backend
    s = selection(backend, _uri(self, "backupPlanId"), _uri(self, "selectionId"))
    del _state(backend)["vc_selections"][s["SelectionId"]]
    return EmptyResult()


def _update_backup_plan(self) -> str:
    body = json.loads(self.body or "{}")
    plan = update_plan(self.backup_backend, _uri(self, "backupPlanId"), body.get("BackupPlan") or {})
    return json.dumps(plan.to_dict())


def _start_backup_job(self) -> str:
    body = json.loads(self.body or "{}")
    job = start_backup_job(self.backup_backend, body.get("BackupVaultName", ""), body.get("ResourceArn", ""),
                           body.get("IamRoleArn", ""), body.get("Lifecycle"))
    # The model: RecoveryPointArn is returned for EFS and advanced DynamoDB only.
    return json.dumps({"BackupJobId": job["BackupJobId"], "CreationDate": job["CreationDate"]})


def _describe_backup_job(self) -> str:
    job = _state(self.backup_backend)["vc_jobs"].get(_uri(self, "backupJobId"))
    if job is None:
        raise ResourceNotFoundException(msg=f"Backup job {_uri(self, 'backupJobId')} does not exist")
    return json.dumps(job)


def _list_recovery_points_by_backup_vault(self) -> str:
    return json.dumps({"RecoveryPoints": recovery_points(self.backup_backend, _uri(self, "backupVaultName"))})


def _delete_recovery_point(self) -> EmptyResult:
    delete_recovery_point(self.backup_backend, _uri(self, "backupVaultName"), _uri(self, "recoveryPointArn"))
    return EmptyResult()


def _list_tags(self) -> str:
    # moto reads the ARN as the path's second-to-last part, for botocore's `/tags/{arn}/`;
    # AWS's current model (and the Rust SDK) sends `/tags/{arn}`: read botocore's own match.
    return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=_uri(self, "resourceArn"))})


HANDLERS = {
    "list_tags": _list_tags,
    "create_backup_selection": _create_backup_selection,
    "get_backup_selection": _get_backup_selection,
    "list_backup_selections": _list_backup_selections,
    "delete_backup_selection": _delete_backup_selection,
    "update_backup_plan": _update_backup_plan,
    "start_backup_job": _start_backup_job,
    "describe_backup_job": _describe_backup_job,
    "list_recovery_points_by_backup_vault": _list_recovery_points_by_backup_vault,
    "delete_recovery_point": _delete_recovery_point,
}


def install() -> None:
    """Adds the calls to moto's backup service; before the server builds its routes."""
    backup_urls.url_paths.update(EXTRA_PATHS)
    for name, handler in HANDLERS.items():
        setattr(BackupResponse, name, handler)
    for attr, wrapper in (("create_backup_plan", create_plan), ("delete_backup_plan", delete_plan),
                          ("delete_backup_vault", delete_vault)):
        original = getattr(BackupBackend, attr)
        setattr(BackupBackend, attr, lambda self, *a, _o=original, _w=wrapper, **k: _w(_o, self, *a, **k))
