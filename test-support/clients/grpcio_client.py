"""Runs the calls in the cases file (argv[1]) with gRPC's C core (PyPI's grpcio, the core of the C++, Ruby, PHP
and C# clients too) and prints one JSON line per call: its name, the gRPC status code (a number), the status
message, and how many response messages arrived. Requests and responses stay raw bytes: no generated code."""

import json
import sys

import grpc


def run(case):
    channel = grpc.insecure_channel(case["target"])
    metadata = list(case["metadata"].items())
    timeout = case["deadline_ms"] / 1000 if case["deadline_ms"] else None
    request = bytes.fromhex(case["request_hex"])
    raw = lambda data: data  # noqa: E731
    received = 0
    try:
        if case["streaming"]:
            call = channel.unary_stream(case["method"], request_serializer=raw, response_deserializer=raw)
            for _ in call(request, metadata=metadata, timeout=timeout):
                received += 1
        else:
            call = channel.unary_unary(case["method"], request_serializer=raw, response_deserializer=raw)
            call(request, metadata=metadata, timeout=timeout)
            received = 1
        code, message = 0, ""
    except grpc.RpcError as error:
        code, message = error.code().value[0], error.details() or ""
    finally:
        channel.close()
    return {"name": case["name"], "code": code, "message": message, "received": received}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    for case in cases:
        print(json.dumps(run(case)), flush=True)


if __name__ == "__main__":
    main()
