"""Skip reasons that several services share."""

IAM_REASON = "IAM is not enforced by moto"
POLICY_REASON = "resource policies are not enforced"
