"""Google credentials for the sources, the way gcloud finds them.

A service-account key file when given; anonymous credentials for an emulator or a local
endpoint; otherwise Application Default Credentials. Credentials are never printed or stored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from logaudit.core.errors import SourceError, UsageError

CREDENTIALS_HINT = (
    "run `gcloud auth application-default login` (Application Default Credentials), "
    "or pass --credentials KEY.json with a service-account key"
)


def google_credentials(credentials_file: str | os.PathLike | None, scopes: Sequence[str], *,
                       anonymous: bool = False) -> Any:
    """Credentials for a Google client. Raises UsageError / SourceError with a hint on failure."""
    import google.auth
    import google.auth.exceptions
    from google.auth.credentials import AnonymousCredentials

    if credentials_file:
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(str(credentials_file), scopes=list(scopes))
        except FileNotFoundError as err:
            raise UsageError(f"--credentials {credentials_file}: no such file") from err
        except (OSError, ValueError, KeyError) as err:
            raise SourceError(f"--credentials {credentials_file}: not a usable service-account key "
                              f"({type(err).__name__}: {str(err)[:200]})",
                              hint="download a JSON key for a service account (IAM > Service accounts > Keys), "
                                   "or omit --credentials to use Application Default Credentials") from err
    if anonymous:
        return AnonymousCredentials()
    try:
        credentials, _ = google.auth.default(scopes=list(scopes))
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise SourceError("no Google Cloud credentials found (Application Default Credentials)",
                          hint=CREDENTIALS_HINT) from err
    return credentials
