"""secmark: forgery-resistant ownership proofs for machine-learning models.

The names below are the stable public API; the sub-packages hold the rest,
layer by layer (``specs/`` describes the formats). Nothing here imports
torch: ``secmark.embed``, ``secmark.evaluate`` and ``secmark.examples`` need
the ``torch`` extra and are imported explicitly.
"""

from __future__ import annotations

from secmark.crypto import IdentityKeys, PublicKeys, VrfPublicKey, VrfSecretKey
from secmark.errors import (
    EncodingError,
    KeyMaterialError,
    ProofError,
    ProtocolError,
    SecmarkError,
    SignatureError,
    SuspectError,
    TimestampError,
)
from secmark.messages import SignedDocument, create_identity, open_identity
from secmark.messages.commitment import Commitment, create_commitment, open_commitment
from secmark.messages.families import (
    NoiseFamily,
    OverlayFamily,
    PoolFamily,
    TokensFamily,
    WeightsFamily,
)
from secmark.messages.labels import ClassLabels, RegressionLabels, TokenLabels
from secmark.models import CallableSuspect, EstimatorSuspect, OipSuspect, Suspect, WeightsSuspect
from secmark.protocol.arbiter import Arbiter, ArbiterPolicy
from secmark.protocol.bundle import verify_bundle
from secmark.protocol.owner import answer_challenge, file_claim
from secmark.protocol.querying import query_suspect
from secmark.stats import binomial_test, decision_threshold
from secmark.timestamp import TimestampAuthority, TrustStore, verify_timestamp
from secmark.timestamp.evidence import TimestampEvidence, collect_evidence
from secmark.triggers import derive_trigger, generate_decoys, iter_triggers, verify_trigger

__version__ = "0.1.0"

__all__ = [
    "Arbiter",
    "ArbiterPolicy",
    "CallableSuspect",
    "ClassLabels",
    "Commitment",
    "EncodingError",
    "EstimatorSuspect",
    "IdentityKeys",
    "KeyMaterialError",
    "NoiseFamily",
    "OipSuspect",
    "OverlayFamily",
    "PoolFamily",
    "ProofError",
    "ProtocolError",
    "PublicKeys",
    "RegressionLabels",
    "SecmarkError",
    "SignatureError",
    "SignedDocument",
    "Suspect",
    "SuspectError",
    "TimestampAuthority",
    "TimestampError",
    "TimestampEvidence",
    "TokenLabels",
    "TokensFamily",
    "TrustStore",
    "VrfPublicKey",
    "VrfSecretKey",
    "WeightsFamily",
    "WeightsSuspect",
    "__version__",
    "answer_challenge",
    "binomial_test",
    "collect_evidence",
    "create_commitment",
    "create_identity",
    "decision_threshold",
    "derive_trigger",
    "file_claim",
    "generate_decoys",
    "iter_triggers",
    "open_commitment",
    "open_identity",
    "query_suspect",
    "verify_bundle",
    "verify_timestamp",
    "verify_trigger",
]
