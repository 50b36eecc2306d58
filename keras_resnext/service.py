"""Input pipelines on other machines: TensorFlow's tf.data service.

When the training host's cores cannot decode and augment fast enough, a dispatcher
and any number of workers run the pipeline elsewhere and stream its batches here:

    python -m keras_resnext.service dispatcher --port 5050
    python -m keras_resnext.service worker --dispatcher grpc://HOST:5050 --port 5051

Then `load_dataset(..., data_service="grpc://HOST:5050")` or `keras-resnext train
--data-service grpc://HOST:5050`. The pipeline's code travels as a graph: the workers
need TensorFlow and the same files (an image folder at the same path, the tfds data
directory), not this package. The service has no authentication or encryption: run
it on a private network only.
"""

import argparse
import socket
import urllib.parse

CONNECT_TIMEOUT_S = 10.0


def parse_address(address):
    """`(host, port)` of `"grpc://host:port"`; a ValueError says what is accepted."""
    parsed = urllib.parse.urlsplit(str(address))
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "grpc" or not parsed.hostname or port is None or parsed.path not in ("", "/"):
        raise ValueError(f"A tf.data service address is grpc://HOST:PORT; received {address!r}.")
    return parsed.hostname, port


def check_reachable(address, timeout=CONNECT_TIMEOUT_S):
    """Raises a ValueError within `timeout` seconds if nothing listens at the dispatcher's address.

    The service's client would retry an unreachable dispatcher for as long as it runs.
    """
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__).lower()
        raise ValueError(f"No tf.data service dispatcher answers at {address} ({reason}); start one with "
                         "`python -m keras_resnext.service dispatcher --port PORT`.") from None


def distribute(dataset, address, job_name=None):
    """`dataset` run by the tf.data service at `address`, each example once per epoch across its workers."""
    import tensorflow as tf

    check_reachable(address)
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode="distributed_epoch", service=address, job_name=job_name))


def main(argv=None):
    """Starts a dispatcher or a worker in this process and serves until it is killed."""
    parser = argparse.ArgumentParser(prog="python -m keras_resnext.service", description=main.__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    dispatcher = sub.add_parser("dispatcher", help="the service's coordinator")
    dispatcher.add_argument("--port", type=int, required=True)
    worker = sub.add_parser("worker", help="runs pipelines for a dispatcher")
    worker.add_argument("--dispatcher", required=True, help="grpc://HOST:PORT")
    worker.add_argument("--port", type=int, default=0, help="its own port (0: any free one)")
    worker.add_argument("--host", default="localhost", help="the name the training host reaches it by")
    args = parser.parse_args(argv)
    import tensorflow as tf

    service = tf.data.experimental.service
    if args.role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(port=args.port))
    else:
        host, port = parse_address(args.dispatcher)
        server = service.WorkerServer(service.WorkerConfig(
            dispatcher_address=f"{host}:{port}", worker_address=f"{args.host}:%port%", port=args.port))
    print(f"tf.data service {args.role} serving", flush=True)
    server.join()


if __name__ == "__main__":
    main()
