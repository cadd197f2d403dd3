"""Galley's validating webhook over real HTTPS, as the Kubernetes API server calls it.

One Galley process serves the module, with a certificate made by :mod:`shared.tls` (passed
through ``SPLITMESH_GALLEY_WEBHOOK_CERT``/``_KEY``); requests trust exactly that certificate.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from shared.tls import self_signed_certificate, write_key_pair

if TYPE_CHECKING:
    from tests.integration.galley.conftest import GalleyLauncher, GalleyProcess


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh serving certificate and key for 127.0.0.1."""
    cert, key = self_signed_certificate("galley-webhook", ["127.0.0.1", "localhost"])
    return write_key_pair(tmp_path_factory.mktemp("tls"), cert, key)


@pytest.fixture(scope="module")
def galley(launch_module_galley: GalleyLauncher, trusted: tuple[Path, Path]) -> GalleyProcess:
    """One Galley for the module: the webhook keeps no state between reviews."""
    cert, key = trusted
    return launch_module_galley(
        env={
            "SPLITMESH_GALLEY_WEBHOOK_ENABLED": "true",
            "SPLITMESH_GALLEY_WEBHOOK_CERT": str(cert),
            "SPLITMESH_GALLEY_WEBHOOK_KEY": str(key),
        }
    )


@pytest.fixture
def client(trusted: tuple[Path, Path]) -> Iterator[httpx.Client]:
    """An HTTPS client that trusts only the webhook's certificate."""
    context = ssl.create_default_context(cafile=str(trusted[0]))
    with httpx.Client(verify=context, timeout=10.0) as https:
        yield https


def admission_review(obj: dict[str, Any], *, uid: str = "3f2c-uid") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "networking.istio.io", "version": "v1alpha3", "kind": obj["kind"]},
            "operation": "CREATE",
            "namespace": "shop",
            "object": obj,
        },
    }


def virtual_service(*weights: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "catalog", "namespace": "shop"},
        "spec": {
            "hosts": ["catalog.shop.svc.cluster.local"],
            "http": [
                {
                    "route": [
                        {
                            "destination": {
                                "host": "catalog.shop.svc.cluster.local",
                                "subset": f"v{index}",
                            },
                            "weight": weight,
                        }
                        for index, weight in enumerate(weights)
                    ]
                }
            ],
        },
    }


def test_a_valid_virtual_service_is_allowed(galley: GalleyProcess, client: httpx.Client) -> None:
    response = client.post(galley.webhook_url, json=admission_review(virtual_service(70, 30)))
    assert response.status_code == 200
    assert response.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "3f2c-uid", "allowed": True},
    }


def test_an_invalid_virtual_service_is_denied_naming_object_and_field(
    galley: GalleyProcess, client: httpx.Client
) -> None:
    response = client.post(
        galley.webhook_url, json=admission_review(virtual_service(70, 20), uid="deny-me")
    )
    assert response.status_code == 200
    answer = response.json()["response"]
    assert (answer["uid"], answer["allowed"]) == ("deny-me", False)
    assert answer["status"]["code"] == 400
    message = answer["status"]["message"]
    assert message.startswith("VirtualService shop/catalog: spec.http[0].route: ")
    assert "90" in message


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request is missing"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "apiVersion"),
        (["not", "a", "review"], "JSON object"),
    ],
)
def test_a_malformed_review_gets_400_with_a_clear_error(
    galley: GalleyProcess, client: httpx.Client, body: object, complaint: str
) -> None:
    response = client.post(galley.webhook_url, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("malformed AdmissionReview: ")
    assert complaint in error


def test_a_body_that_is_not_json_gets_400(galley: GalleyProcess, client: httpx.Client) -> None:
    response = client.post(
        galley.webhook_url,
        content=b"apiVersion: admission.k8s.io/v1\n",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("body is not JSON")


def test_the_webhook_serves_only_tls_with_the_configured_certificate(
    galley: GalleyProcess,
) -> None:
    review = admission_review(virtual_service(100))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(galley.webhook_url, json=review, timeout=10.0)  # system CAs only
    plain = galley.webhook_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.post(plain, json=review, timeout=10.0)
