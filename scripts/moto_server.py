"""moto_server with DynamoDB requests taken one at a time.

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
