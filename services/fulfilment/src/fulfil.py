"""Order fulfilment: every OrderPlaced event on the topic marks its order for fulfilment."""

import json
import os

import boto3

TABLE_NAME = os.environ["TABLE_NAME"]

dynamodb = boto3.client("dynamodb")


def handle(event, _context):
    marked = 0
    for record in event.get("Records", []):
        message = json.loads(record["Sns"]["Message"])
        if message.get("type") != "OrderPlaced":
            continue
        dynamodb.update_item(
            TableName=TABLE_NAME,
            Key={"orderId": {"S": message["orderId"]}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "fulfilling"}},
        )
        marked += 1
    return {"marked": marked}
