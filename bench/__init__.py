"""photo-ingest's benchmark (issue 7): throughput, CPU per message and memory against the naive port and the
SDK's own floor, on a fast local SQS + DynamoDB endpoint. Run it with `make bench` or `python -m bench --help`.

    bench/endpoint.py  the endpoint: SQS JSON and DynamoDB JSON protocols on 127.0.0.1, keep-alive, latency
    bench/workload.py  the N S3 notifications (10% duplicate deliveries) and the end state they must produce
    bench/naive.py     contender 1: the old Lambda's code in a sequential boto3 poll loop
    bench/floor.py     contender 4: bare aiobotocore put_item, receive and delete, no parsing or logging
    bench/runner.py    one case: endpoint, pre-fill, contender processes, measurement, end-state check
    bench/__main__.py  the command line, the table, the targets and the JSON under bench/results/
"""
