"""Conditional requests for photos: which If-None-Match values name an ETag."""

from voting.http.photos import etag_matches


def test_etag_matching_follows_rfc_9110():
    etag = '"abc"'
    assert etag_matches('"abc"', etag)
    assert etag_matches('W/"abc"', etag)
    assert etag_matches('"x", "abc"', etag)
    assert etag_matches("*", etag)
    assert not etag_matches('"abcd"', etag)
    assert not etag_matches("abc", etag)
    assert not etag_matches(None, etag)
    assert not etag_matches("", etag)
