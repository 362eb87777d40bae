"""The one Bearer-header reader both credentials share (API keys, inbox tokens)."""

from rest_framework import authentication, exceptions


class BearerAuthentication(authentication.BaseAuthentication):
    """Reads `Authorization: Bearer <credential>` and hands the credential to `authenticate_credential`."""

    credential_name = "credential"
    realm = "herald"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme != "Bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed(f"Use 'Authorization: Bearer <{self.credential_name}>'.")
        return self.authenticate_credential(request, raw.strip())

    def authenticate_credential(self, request, credential: str):
        raise NotImplementedError

    def authenticate_header(self, request):
        return f'Bearer realm="{self.realm}"'
