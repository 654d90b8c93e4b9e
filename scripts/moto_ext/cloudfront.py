"""CloudFront's rules on changing and deleting a distribution, which moto 5.2.5 does not keep.

AWS refuses to delete a distribution that is still enabled (`DistributionNotDisabled`, 409:
it must be disabled, and that change deployed, first), and it takes an update or a deletion
only with the distribution's current ETag in `If-Match` (`PreconditionFailed`, 412: someone
changed it since you read it); every change gives the distribution a new ETag. Moto deletes
an enabled distribution, takes any `If-Match` and never changes the ETag, so a tool that
forgets to disable first, or writes over another's change, passes there and fails on AWS.
`install` adds exactly these rules (botocore's cloudfront 2020-05-31 model names both errors).
"""

from moto.cloudfront import models
from moto.cloudfront.exceptions import CloudFrontException, NoSuchDistribution


class DistributionNotDisabled(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "DistributionNotDisabled", "The distribution you are trying to delete has not been disabled."
        )


class PreconditionFailed(CloudFrontException):
    def __init__(self) -> None:
        super().__init__("PreconditionFailed", "The precondition in one or more of the request fields evaluated to false.")


def enabled(dist) -> bool:
    value = dist.distribution_config.Enabled
    return value is True or str(value).lower() == "true"


def install() -> None:
    backend = models.CloudFrontBackend
    original_delete, original_update = backend.delete_distribution, backend.update_distribution

    def current(self, dist_id, if_match):
        dist = self.distributions.get(dist_id)
        if dist is None:
            raise NoSuchDistribution
        if if_match and if_match != dist.etag:
            raise PreconditionFailed
        return dist

    def delete_distribution(self, distribution_id, if_match):
        dist = current(self, distribution_id, if_match)
        if enabled(dist) or dist.status != "Deployed":
            raise DistributionNotDisabled
        return original_delete(self, distribution_id, if_match)

    def update_distribution(self, dist_config, _id, if_match):
        current(self, _id, if_match)
        dist, location, _ = original_update(self, dist_config, _id, if_match)
        dist.etag = models.random_id()
        # A change takes AWS minutes to reach the edge: InProgress again until it has.
        dist.status = "InProgress"
        return dist, location, dist.etag

    backend.delete_distribution = delete_distribution
    backend.update_distribution = update_distribution
