"""The subjects GitHub's OIDC tokens carry, and which CI identity each one signs in as.

Entra compares a federated credential's subject with the token's `sub` claim literally and
case-sensitively, so these strings are built in one place and tested character for character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
TOKEN_EXCHANGE_AUDIENCE: Final = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret

# deploy: may change the resource group (`pulumi up`, deploy); preview: read-only (`pulumi preview`).
Purpose = Literal["deploy", "preview"]


@dataclass(frozen=True, slots=True)
class Subject:
    """One federated credential: the exact `sub` claim, the identity it maps to, a name for Azure."""

    subject: str
    purpose: Purpose
    credential_name: str


def subject_prefix_for(repository: str, configured: str = "") -> str:
    """What every subject of `repository` starts with, up to the `:` before the ref, environment or event.

    The one place the rule is written: `configured` (githubSubjectPrefix) when set, since GitHub's
    immutable subject format carries owner and repository ids only GitHub knows; else `repo:<owner>/<name>`.
    """
    return configured or f"repo:{repository}"


def _credential_name(kind: str, value: str) -> str:
    # Federated credential names: letters, digits, '-' and '_', starting with a letter or digit.
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_-]', '-', value)}"[:120]


def subjects_for(
    repository: str,
    *,
    branches: tuple[str, ...] = ("main",),
    tags: tuple[str, ...] = (),
    environments: tuple[str, ...] = (),
    pull_requests: bool = True,
    subject_prefix: str = "",
) -> tuple[Subject, ...]:
    """Every subject the workflows will present: branches, tags, environments, then pull_request.

    `subject_prefix` replaces `repo:<repository>` when set: GitHub's immutable subject format carries
    owner and repository ids, which only GitHub knows. Credential names never include it: setting it
    changes the credentials' subjects, never their names.
    """
    prefix = subject_prefix_for(repository, subject_prefix)
    subjects = [
        Subject(f"{prefix}:ref:refs/heads/{b}", "deploy", _credential_name("branch", b)) for b in branches
    ]
    subjects += [Subject(f"{prefix}:ref:refs/tags/{t}", "deploy", _credential_name("tag", t)) for t in tags]
    subjects += [
        Subject(f"{prefix}:environment:{e}", "deploy", _credential_name("env", e)) for e in environments
    ]
    if pull_requests:
        subjects.append(Subject(f"{prefix}:pull_request", "preview", "pull-request"))
    return tuple(subjects)
