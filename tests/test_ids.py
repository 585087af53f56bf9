"""Inference IDs and output file names: deterministic, and always within the API's limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkinvoke.manifest.ids import inference_id, output_filename
from bulkinvoke.request_options import check_filename, check_inference_id

texts = st.text(max_size=80)
attempts = st.integers(min_value=1, max_value=10**6)
# What a manifest row may carry as its own ID: anything check_inference_id accepts.
own_ids = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64
).filter(lambda value: check_inference_id(value) is None)


@settings(max_examples=300)
@given(namespace=texts, endpoint=texts, location=texts, attempt=attempts)
def test_generated_ids_are_deterministic_and_valid(
    namespace: str, endpoint: str, location: str, attempt: int
) -> None:
    first = inference_id(namespace, endpoint, location, attempt)
    assert first == inference_id(namespace, endpoint, location, attempt)
    assert check_inference_id(first) is None
    assert re.fullmatch(r"bi-[a-z2-7]{24}", first)


@settings(max_examples=200)
@given(namespace=texts, endpoint=texts, location=texts, attempt=attempts)
def test_every_part_of_the_input_changes_the_id(
    namespace: str, endpoint: str, location: str, attempt: int
) -> None:
    base = inference_id(namespace, endpoint, location, attempt)
    assert base != inference_id(namespace + "x", endpoint, location, attempt)
    assert base != inference_id(namespace, endpoint + "x", location, attempt)
    assert base != inference_id(namespace, endpoint, location + "x", attempt)
    assert base != inference_id(namespace, endpoint, location, attempt + 1)


@settings(max_examples=300)
@given(own=own_ids, location=texts, attempt=attempts)
def test_a_rows_own_id_stays_valid_on_every_attempt(own: str, location: str, attempt: int) -> None:
    chosen = inference_id("ns", "endpoint", location, attempt, own_id=own)
    assert chosen == inference_id("ns", "endpoint", location, attempt, own_id=own)
    assert check_inference_id(chosen) is None
    assert (chosen == own) == (attempt == 1)


@settings(max_examples=500)
@given(value=st.text(max_size=100) | own_ids | st.just("a.b.c") | st.just("x" * 28))
def test_output_filename_is_always_a_valid_filename(value: str) -> None:
    name = output_filename(value)
    assert check_filename(name) is None
    assert name == output_filename(value)


@given(namespace=texts, endpoint=texts, location=texts, attempt=attempts)
def test_generated_ids_are_their_own_file_stem(
    namespace: str, endpoint: str, location: str, attempt: int
) -> None:
    generated = inference_id(namespace, endpoint, location, attempt)
    assert output_filename(generated) == generated + ".out"


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        inference_id("ns", "endpoint", "s3://b/k", 0)
