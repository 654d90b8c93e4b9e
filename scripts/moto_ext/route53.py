"""Route 53's rules on a change batch, which moto 5.2.5 does not keep.

A DELETE removes exactly the record it names: its name, type and set identifier. Moto's
removes every record of that set identifier whatever its name (a region's record at one
name takes its record at another with it), and without a set identifier every record of
the name and type (the routed ones too). And a name's records of one type are either one
simple record or routed ones (each with a set identifier), never both: AWS refuses such a
batch whole (InvalidChangeBatch), which is why a tool must swap them in one batch; moto
takes both. `install` makes DELETE exact and refuses a batch that would leave both, leaving
the zone as it was; nothing else changes.
"""

from moto.route53.exceptions import Route53ClientError
from moto.route53.models import FakeZone, Route53Backend


class InvalidChangeBatch(Route53ClientError):
    def __init__(self, message: str) -> None:
        super().__init__("InvalidChangeBatch", message)


def exact(zone, name: str, kind, set_identifier) -> None:
    zone.rrsets = [r for r in zone.rrsets
                   if not (r.name == name and (kind is None or r.type == kind) and r.set_identifier == set_identifier)]


def mixed(zone):
    """A name and type with both a simple record and routed ones, if any."""
    seen = {}
    for r in zone.rrsets:
        seen.setdefault((r.name, r.type), set()).add(r.set_identifier is None)
    return next((key for key, kinds in seen.items() if kinds == {True, False}), None)


def install() -> None:
    original = Route53Backend.change_resource_record_sets

    def change_resource_record_sets(self, zoneid, change_list):
        zone = self.get_hosted_zone(zoneid)
        before, journal = list(zone.rrsets), len(zone.rr_changes)
        # The DELETEs by set identifier in the order moto applies them, each taken exactly.
        queue = [c["ResourceRecordSet"] for c in change_list
                 if c["Action"] == "DELETE" and "SetIdentifier" in c["ResourceRecordSet"]]

        def by_id(_set_identifier):
            r = queue.pop(0)
            name = r["Name"] if r["Name"].endswith(".") else r["Name"] + "."
            exact(zone, name, r.get("Type"), r["SetIdentifier"])

        zone.delete_rrset_by_id = by_id
        try:
            original(self, zoneid, change_list)
        finally:
            del zone.delete_rrset_by_id
        clash = mixed(zone)
        if clash:
            zone.rrsets = before
            del zone.rr_changes[journal:]
            raise InvalidChangeBatch(
                f"[RRSet with DNS name {clash[0]}, type {clash[1]} cannot be created as other RRSets exist with the "
                "same name and type.]"
            )

    def delete_rrset(self, rrset):
        exact(self, rrset["Name"], rrset.get("Type"), None)

    Route53Backend.change_resource_record_sets = change_resource_record_sets
    FakeZone.delete_rrset = delete_rrset
