"""The SeaweedFS harness itself: a real S3 store that keeps its data across a restart."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from tests.seaweed import SeaweedS3


def test_objects_and_multipart_uploads_survive_a_restart(own_seaweed: SeaweedS3) -> None:
    client, bucket = own_seaweed.client(), own_seaweed.bucket
    client.put_object(Bucket=bucket, Key="t/kept", Body=b"kept bytes")
    upload = client.create_multipart_upload(Bucket=bucket, Key="t/multi")["UploadId"]
    client.upload_part(Bucket=bucket, Key="t/multi", UploadId=upload, PartNumber=1, Body=b"p" * 100)

    own_seaweed.stop()
    with pytest.raises(EndpointConnectionError):
        client.head_object(Bucket=bucket, Key="t/kept")
    own_seaweed.start()

    assert client.get_object(Bucket=bucket, Key="t/kept", Range="bytes=5-9")["Body"].read() == b"bytes"
    parts = client.list_parts(Bucket=bucket, Key="t/multi", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 100)]


def test_the_shared_store_answers_with_its_credentials_only(seaweed: SeaweedS3) -> None:
    seaweed.client().put_object(Bucket=seaweed.bucket, Key="harness/x", Body=b"x")
    stranger = SeaweedS3(seaweed.directory, secret_key="wrong", ports=seaweed.ports)
    with pytest.raises(Exception, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        stranger.client().get_object(Bucket=seaweed.bucket, Key="harness/x")
    seaweed.empty_prefix("harness/")
    assert "Contents" not in seaweed.client().list_objects_v2(Bucket=seaweed.bucket, Prefix="harness/")
