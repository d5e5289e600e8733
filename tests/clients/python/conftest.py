"""Fixtures for the generated Python client's tests (tests/clients/python).

scripts/test-api generates the client from the committed openapi/openapi.json
into target/api-clients/python/attrgate_client and runs pytest through
`scripts/demo --run`, which sets ATTRGATE_DEMO_ENV to a JSON file with the
running gateway's URL, the pool id and tokens.
"""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, os.environ.get("ATTRGATE_PYTHON_CLIENT_DIR", str(ROOT / "target" / "api-clients" / "python")))


@pytest.fixture(scope="session")
def demo() -> dict:
    path = os.environ.get("ATTRGATE_DEMO_ENV")
    if not path:
        pytest.fail("ATTRGATE_DEMO_ENV is not set: run this through scripts/test-api (scripts/demo --run)")
    return json.loads(Path(path).read_text())


@pytest.fixture
def support_client(demo):
    from attrgate_client import AuthenticatedClient

    with AuthenticatedClient(base_url=demo["base_url"], token=demo["tokens"]["support"]) as client:
        yield client
