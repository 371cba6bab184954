import hashlib

import pytest

from trials.canonical import canonical_json, sha256_of

pytestmark = pytest.mark.unit


def test_canonical_json_ignores_key_order_and_whitespace():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert sha256_of({"b": 1, "a": 2}) == sha256_of({"a": 2, "b": 1})


def test_hash_is_sha256_of_utf8_text():
    value = {"prompt": "Bienestar ✓"}
    expected = hashlib.sha256('{"prompt":"Bienestar ✓"}'.encode()).hexdigest()
    assert sha256_of(value) == expected


def test_any_change_changes_the_hash():
    assert sha256_of({"temperature": 0.7}) != sha256_of({"temperature": 0.70001})
