"""photo-ingest's benchmark (issue 7): throughput, CPU per message and memory against the naive port and the
SDK's own floor, on a fast local SQS + DynamoDB endpoint. Run it with `make bench` or `python -m bench --help`.

    bench/endpoint.py  the endpoint: SQS JSON and DynamoDB JSON protocols on 127.0.0.1, keep-alive, latency
    bench/workload.py  the N S3 notifications (10% duplicate deliveries) and the end state they must produce
    bench/naive.py     contender 1: the old Lambda's code in a sequential boto3 poll loop
    bench/floor.py     contender 4: bare aiobotocore put_item, receive and delete, no parsing or logging
    bench/capacity.py  the endpoint's table write capacity: token buckets for the table and its key ranges
    bench/runner.py    one case: endpoint, pre-fill, contender processes, measurement, end-state check
    bench/node_peer.py the Node peer's install (npm ci of bench/peers/node into .scratch/node-peer)
    bench/peers/node/  contender 5: sqs-consumer 15 on Node 22 and the AWS SDK for JavaScript v3
    bench/fleet.py     the fleet (issue 14): 1-3 processes sharing one table capacity, redrive to a DLQ
    bench/fleet_report.py  the fleet table, the per-process table and the fleet's targets
    bench/charts.py    the PNG charts (throughput, CPU per message, the fleet) from a run's JSON
    bench/__main__.py  the command line, the tables, the targets and the JSON under bench/results/
"""
