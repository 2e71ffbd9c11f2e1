"""Storage providers: where backups of the trade database are kept.

``PROVIDERS`` is the one list of them: the ``CLOUD_STORAGE_PROVIDER`` name, the
provider class's dotted path, and the SDK the class needs. A class is imported on
first use, so the site starts with only the chosen provider's SDK installed; a
missing SDK is a ``StorageError`` that names the pip package to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from backups.providers.base import ObjectNotFound, StorageError, StorageProvider, StoredObject

__all__ = ["PROVIDERS", "ObjectNotFound", "ProviderEntry", "StorageError", "StorageProvider", "StoredObject"]


@dataclass(frozen=True)
class ProviderEntry:
    """One provider: its class, named by dotted path (importing it imports its SDK), and that SDK."""

    class_path: str
    #: What to pip install when the SDK is missing; None for a provider without one.
    pip_package: str | None = None
    #: The top-level modules of the SDK: only their absence means "install ``pip_package``".
    sdk_modules: tuple[str, ...] = ()

    @property
    def class_name(self) -> str:
        return self.class_path.rpartition(".")[2]


PROVIDERS: dict[str, ProviderEntry] = {
    "local": ProviderEntry("backups.providers.local.LocalStorage"),
    "oracle": ProviderEntry("backups.providers.oracle.OracleStorage", "oci", ("oci",)),
    "azure": ProviderEntry("backups.providers.azure.AzureStorage", "azure-storage-blob", ("azure",)),
    "aws": ProviderEntry("backups.providers.aws.S3Storage", "boto3", ("boto3", "botocore")),
    "gcp": ProviderEntry("backups.providers.gcp.GCSStorage", "google-cloud-storage", ("google",)),
}


def provider_class(name: str) -> type[StorageProvider]:
    """The provider class registered as ``name``, imported now."""
    try:
        entry = PROVIDERS[name]
    except KeyError:
        raise StorageError(
            f"CLOUD_STORAGE_PROVIDER must be one of {', '.join(PROVIDERS)}; got {name!r}"
        ) from None
    module_name = entry.class_path.rpartition(".")[0]
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if entry.pip_package is None or missing not in entry.sdk_modules:
            raise
        raise StorageError(
            f"The {name} storage provider needs the {entry.pip_package} package: "
            f"pip install {entry.pip_package}"
        ) from None
    return getattr(module, entry.class_name)


def get_provider(name: str | None = None) -> StorageProvider:
    """The configured provider (``CLOUD_STORAGE_PROVIDER``), built from its environment variables."""
    from django.conf import settings

    chosen = name or settings.CLOUD_STORAGE_PROVIDER
    return provider_class(chosen).from_env()
