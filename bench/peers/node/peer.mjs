// The benchmark's Node peer: photo-ingest's job (S3 notification -> one conditional PutItem per photo), built
// the way sqs-consumer's README shows it, on Node 22 and the AWS SDK for JavaScript v3.
//
// - CONSUMERS Consumer instances (16) share one SQSClient and one DynamoDBClient; each long-polls for
//   batches of 10 and hands them to `handleMessageBatch`.
// - Per record: the key decoded like Python's unquote_plus, the prefix check, photoId = sha256(bucket/key)[:20],
//   and one PutItem with attribute_not_exists(photoId) and ReturnValuesOnConditionCheckFailure=ALL_OLD.
// - A message is acknowledged (returned from the batch handler) only when every record in it is inserted,
//   a confirmed duplicate, or skipped; sqs-consumer deletes the returned ones with one DeleteMessageBatch.
//   Anything else stays on the queue for its visibility timeout and the redrive policy, as the README says.
// - Region, credentials and endpoint come from the SDK's environment (AWS_REGION, AWS_ACCESS_KEY_ID,
//   AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); QUEUE_URL, PHOTOS_TABLE and RAW_PREFIX as for photo-ingest.
// - SIGTERM: stop polling, let the batches in hand finish (at most 20 s), print a summary line, exit 0.
import { createHash } from "node:crypto";
import { EventEmitter, once } from "node:events";

import { ConditionalCheckFailedException, DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { Consumer } from "sqs-consumer";

const CONSUMERS = 16;
const BATCH_SIZE = 10;
const SHUTDOWN_TIMEOUT_MS = 20_000;
const MAX_ERROR_LINES = 20;

const queueUrl = process.env.QUEUE_URL;
const table = process.env.PHOTOS_TABLE ?? "Photos";
const rawPrefix = process.env.RAW_PREFIX ?? "photos-raw/";
if (!queueUrl) {
  console.error("QUEUE_URL is required");
  process.exit(2);
}

const sqs = new SQSClient({});
// One socket per put that can be in flight (16 consumers x 10 messages), as photo-ingest sizes its pool.
const dynamodb = new DynamoDBClient({ requestHandler: { httpAgent: { maxSockets: CONSUMERS * BATCH_SIZE } } });

const counts = { received: 0, acked: 0, inserted: 0, duplicate: 0, conflict: 0, skipped: 0, failed: 0, poison: 0 };
const errorsByName = {};
let errorLines = 0;
let inFlight = 0;
const activity = new EventEmitter();

export function photoId(bucket, key) {
  return createHash("sha256").update(`${bucket}/${key}`).digest("hex").slice(0, 20);
}

// Python's urllib.parse.unquote_plus for S3's form-encoded keys; a bad escape throws (the message is poison).
export function decodeKey(key) {
  return decodeURIComponent(key.replace(/\+/g, " "));
}

// ISO 8601 UTC the way photo-ingest writes it (Python's isoformat): 2024-05-02T10:15:30.123000+00:00.
function isoUtc(date) {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000+00:00");
}

function noteError(err) {
  const name = err?.name ?? "Error";
  errorsByName[name] = (errorsByName[name] ?? 0) + 1;
  if (errorLines++ < MAX_ERROR_LINES) console.error(`${name}: ${err?.message ?? err}`);
}

function buildItem(bucket, key, record, now) {
  const object = record.s3.object;
  const uploaded = record.eventTime ? new Date(record.eventTime) : now;
  const item = {
    photoId: { S: photoId(bucket, key) },
    s3Bucket: { S: bucket },
    s3Key: { S: key },
    uploadedAt: { S: isoUtc(Number.isNaN(uploaded.getTime()) ? now : uploaded) },
    ingestedAt: { S: isoUtc(now) },
    eventName: { S: record.eventName ?? "" },
  };
  if (Number.isInteger(object.size)) item.size = { N: String(object.size) };
  for (const [name, value] of [["eTag", object.eTag], ["versionId", object.versionId], ["sequencer", object.sequencer]]) {
    if (value) item[name] = { S: value };
  }
  return item;
}

// true once the record is settled: inserted, a confirmed duplicate, or skipped.
async function handleRecord(record) {
  const bucket = record?.s3?.bucket?.name;
  const rawKey = record?.s3?.object?.key;
  if (!bucket || !rawKey || !String(record.eventName ?? "").startsWith("ObjectCreated:")) {
    counts.skipped++;
    return true;
  }
  const key = decodeKey(rawKey);
  if (!key.startsWith(rawPrefix)) {
    counts.skipped++;
    return true;
  }
  const item = buildItem(bucket, key, record, new Date());
  try {
    await dynamodb.send(
      new PutItemCommand({
        TableName: table,
        Item: item,
        ConditionExpression: "attribute_not_exists(photoId)",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      }),
    );
    counts.inserted++;
    return true;
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException) {
      const same = err.Item?.s3Bucket?.S === bucket && err.Item?.s3Key?.S === key;
      counts[same ? "duplicate" : "conflict"]++;
      return same; // a conflict (another object under this photoId) is never acknowledged
    }
    counts.failed++;
    noteError(err);
    return false;
  }
}

async function handleMessage(message) {
  let records;
  try {
    records = JSON.parse(message.Body ?? "").Records ?? [];
    const settled = await Promise.all(records.map(handleRecord));
    return settled.every(Boolean);
  } catch (err) {
    counts.poison++;
    noteError(err);
    return false;
  }
}

async function handleMessageBatch(messages) {
  inFlight++;
  try {
    counts.received += messages.length;
    const settled = await Promise.all(messages.map(handleMessage));
    const acked = messages.filter((_, index) => settled[index]);
    counts.acked += acked.length;
    return acked; // sqs-consumer deletes exactly these, with one DeleteMessageBatch
  } finally {
    inFlight--;
    if (inFlight === 0) activity.emit("idle");
  }
}

const consumers = Array.from({ length: CONSUMERS }, () =>
  Consumer.create({ queueUrl, sqs, batchSize: BATCH_SIZE, handleMessageBatch }),
);

async function shutdown(signal) {
  for (const consumer of consumers) consumer.stop();
  if (inFlight > 0) {
    await Promise.race([once(activity, "idle"), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_TIMEOUT_MS))]);
  }
  console.log(JSON.stringify({ event: "peer.stopped", signal, consumers: CONSUMERS, ...counts, errors: errorsByName }));
  process.exit(0);
}

for (const consumer of consumers) {
  consumer.on("error", noteError);
  consumer.on("processing_error", noteError);
  consumer.start();
}
process.once("SIGTERM", () => shutdown("SIGTERM"));
process.once("SIGINT", () => shutdown("SIGINT"));
console.log(JSON.stringify({ event: "peer.started", consumers: CONSUMERS, node: process.version }));
