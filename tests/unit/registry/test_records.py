"""Record content and hashes: a field added to a kind must not rewrite every row written before it existed."""

from __future__ import annotations

from reconciler.registry.records import BindingRecord, BoundServerRecord

BOUND = (BoundServerRecord(server="crm"),)


def test_a_binding_for_every_agent_hashes_as_before_agents_existed() -> None:
    everyone = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND)

    assert "agents" not in everyone.content()
    # The hash this binding had before bindings could name agents (computed with that version of the record).
    assert everyone.content_hash() == "sha256:dbe63acfd8a31690a0b8c3dbebb4fcf1db43ed0afa50580c844cf26a20d28494"


def test_assigned_agents_are_content() -> None:
    everyone = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND)
    tutor = BindingRecord(tenant="acme", name="support", template="support-agent", servers=BOUND, agents=("tutor",))

    assert tutor.content()["agents"] == ["tutor"]
    assert tutor.content_hash() != everyone.content_hash()
