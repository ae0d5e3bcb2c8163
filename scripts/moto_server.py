"""moto_server with DynamoDB requests taken one at a time, and two answers as the service
gives them: EBS direct listings (`ebs_listings_as_the_service_answers`) and KMS refusing
keys that are not enabled (`kms_refuses_keys_not_enabled`).

moto's TransactWriteItems copies every table it touches and puts the copies back when a
condition fails, so a concurrent request's writes in between are lost or, when another
failed transaction restores its own copy, brought back. Real DynamoDB is atomic per item
and per transaction; the store contract's dispatch race test relies on that. Serialising
DynamoDB calls gives moto those guarantees; every other service stays concurrent.
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


def one_dynamodb_call_at_a_time(app):
    lock = threading.Lock()

    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return serve


EBS_BLOCK = 524288


def ebs_listings_as_the_service_answers():
    """moto's EBS direct ListChangedBlocks lists a block only when the first snapshot holds
    it (the service: every block that differs, added ones included), and its listings say
    BlockSize 512 (the service: 524288, the block every index counts in). Blocks are kept by
    integer index (moto keys them by the URL's text), so the union above compares like
    with like and listings come in index order, as the service's do."""
    from moto.ebs import models

    init, put_block = models.EBSSnapshot.__init__, models.EBSSnapshot.put_block
    get_block = models.EBSBackend.get_snapshot_block

    def snapshot_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.block_size = EBS_BLOCK

    def put_int_block(self, block_idx, *args, **kwargs):
        return put_block(self, int(block_idx), *args, **kwargs)

    def get_int_block(self, snapshot_id, block_index):
        return get_block(self, snapshot_id, int(block_index))

    def list_changed_blocks(self, first_snapshot_id, second_snapshot_id):
        first, second = self.snapshots[first_snapshot_id], self.snapshots[second_snapshot_id]
        changed = {}
        for idx in sorted(set(first.blocks) | set(second.blocks)):
            a, b = first.blocks.get(idx), second.blocks.get(idx)
            if a is None or b is None or a.block_data != b.block_data:
                changed[idx] = (a.block_token if a else None, b.block_token if b else None)
        return changed, second

    models.EBSSnapshot.__init__ = snapshot_init
    models.EBSSnapshot.put_block = put_int_block
    models.EBSBackend.get_snapshot_block = get_int_block
    models.EBSBackend.list_changed_blocks = list_changed_blocks


def kms_refuses_keys_not_enabled():
    """moto's KMS encrypts and decrypts with a disabled key or one pending deletion; the
    service refuses (DisabledException, KMSInvalidStateException), which is how a customer
    revokes a key. Refused here the same way."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms import models

    encrypt, decrypt = models.KmsBackend.encrypt, models.KmsBackend.decrypt

    def usable(backend, key_id):
        key = backend.keys[backend.any_id_to_key_id(key_id)]
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        if key.key_state == "PendingDeletion":
            raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")

    def checked_encrypt(self, key_id, plaintext, encryption_context):
        usable(self, key_id)
        return encrypt(self, key_id=key_id, plaintext=plaintext, encryption_context=encryption_context)

    def checked_decrypt(self, ciphertext_blob, encryption_context, key_id=None):
        plaintext, arn = decrypt(
            self, ciphertext_blob=ciphertext_blob, encryption_context=encryption_context, key_id=key_id
        )
        usable(self, arn)
        return plaintext, arn

    models.KmsBackend.encrypt = checked_encrypt
    models.KmsBackend.decrypt = checked_decrypt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    # The same moto, also over TLS (an S3-compatible store behind a private CA): one more
    # listener on the same backends, so a bucket made over HTTP is there over HTTPS.
    parser.add_argument("--tls-host")
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    # moto builds some URLs (SQS queue URLs, presigned S3 links) from this port.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ebs_listings_as_the_service_answers()
    kms_refuses_keys_not_enabled()
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    if args.tls_port:
        threading.Thread(
            target=run_simple,
            args=(args.tls_host or args.host, args.tls_port, one_dynamodb_call_at_a_time(app)),
            kwargs=dict(threaded=True, request_handler=MotoRequestHandler, ssl_context=(args.tls_cert, args.tls_key)),
            daemon=True,
        ).start()
    run_simple(
        args.host,
        args.port,
        one_dynamodb_call_at_a_time(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
