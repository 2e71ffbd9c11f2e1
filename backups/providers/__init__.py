"""Storage providers: where backups of the trade database are kept.

``PROVIDERS`` maps the ``CLOUD_STORAGE_PROVIDER`` name to the provider class's
dotted path. A class is imported on first use, so the site starts with only the
chosen provider's SDK installed; a missing SDK is a ``StorageError`` that names
the pip package to install.
"""

from __future__ import annotations

from importlib import import_module

from backups.providers.base import ObjectNotFound, StorageError, StorageProvider, StoredObject

__all__ = ["PIP_PACKAGES", "PROVIDERS", "ObjectNotFound", "StorageError", "StorageProvider", "StoredObject"]

PROVIDERS: dict[str, str] = {
    "local": "backups.providers.local.LocalStorage",
    "oracle": "backups.providers.oracle.OracleStorage",
    "azure": "backups.providers.azure.AzureStorage",
    "aws": "backups.providers.aws.S3Storage",
    "gcp": "backups.providers.gcp.GCSStorage",
}

# What to pip install when a provider's SDK is missing.
PIP_PACKAGES: dict[str, str] = {
    "oracle": "oci",
    "azure": "azure-storage-blob",
    "aws": "boto3",
    "gcp": "google-cloud-storage",
}


def provider_class(name: str) -> type[StorageProvider]:
    """The provider class registered as ``name``, imported now."""
    try:
        path = PROVIDERS[name]
    except KeyError:
        raise StorageError(
            f"CLOUD_STORAGE_PROVIDER must be one of {', '.join(PROVIDERS)}; got {name!r}"
        ) from None
    module_name, _, class_name = path.rpartition(".")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        package = PIP_PACKAGES.get(name)
        if package is None or (exc.name or "").split(".")[0] not in _sdk_roots(name):
            raise
        raise StorageError(
            f"The {name} storage provider needs the {package} package: pip install {package}"
        ) from None
    return getattr(module, class_name)


def _sdk_roots(name: str) -> set[str]:
    return {"oracle": {"oci"}, "azure": {"azure"}, "aws": {"boto3", "botocore"}, "gcp": {"google"}}.get(
        name, set()
    )


def get_provider(name: str | None = None) -> StorageProvider:
    """The configured provider (``CLOUD_STORAGE_PROVIDER``), built from its environment variables."""
    from django.conf import settings

    chosen = name or settings.CLOUD_STORAGE_PROVIDER
    return provider_class(chosen).from_env()
