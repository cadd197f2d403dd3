"""The validating webhook's verdicts on AdmissionReview v1 bodies."""

from __future__ import annotations

from typing import Any

import pytest

from services.galley.core.admission import MalformedReviewError, review


def _review(obj: dict[str, Any] | None, *, operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": operation, "namespace": "shop", "object": obj},
    }


def _service_entry(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "ServiceEntry",
        "metadata": {"name": "payments", "namespace": "shop"},
        "spec": {
            "hosts": ["payments.example.com"],
            "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
            "resolution": "DNS",
            **spec,
        },
    }


def test_valid_object_is_allowed_and_uid_echoed() -> None:
    answer = review(_review(_service_entry()))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"] == {"uid": "u-1", "allowed": True}


def test_unknown_field_is_denied_with_kind_name_and_path() -> None:
    answer = review(_review(_service_entry(hostz=["x"])))
    response = answer["response"]
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "ServiceEntry shop/payments" in message
    assert "spec.hostz" in message
    assert "unknown field" in message


def test_port_out_of_range_is_denied() -> None:
    bad = _service_entry(ports=[{"number": 70000, "name": "https", "protocol": "TLS"}])
    message = review(_review(bad))["response"]["status"]["message"]
    assert "spec.ports[0].number" in message


def test_delete_is_always_allowed() -> None:
    answer = review(_review(None, operation="DELETE"))
    assert answer["response"]["allowed"] is True


def test_kinds_we_do_not_own_are_allowed() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}
    assert review(_review(pod))["response"]["allowed"] is True


def test_namespace_comes_from_the_request_when_the_object_has_none() -> None:
    obj = _service_entry(hostz=["x"])
    del obj["metadata"]["namespace"]
    message = review(_review(obj))["response"]["status"]["message"]
    assert "ServiceEntry shop/payments" in message


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "JSON object"),
        ({"kind": "Pod"}, "kind must be 'AdmissionReview'"),
        ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"}, "apiVersion"),
        ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}, "request is missing"),
        (
            {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}},
            "request.uid",
        ),
        (_review("not-an-object"), "request.object"),  # type: ignore[arg-type]
    ],
)
def test_malformed_reviews_raise_with_the_reason(body: object, complaint: str) -> None:
    with pytest.raises(MalformedReviewError, match=complaint):
        review(body)
