"""Order notifications: every OrderPlaced event on the topic is looked up and announced."""

import json
import os

import boto3

TABLE_NAME = os.environ["TABLE_NAME"]

dynamodb = boto3.client("dynamodb")


def handle(event, _context):
    notified = []
    for record in event.get("Records", []):
        message = json.loads(record["Sns"]["Message"])
        if message.get("type") != "OrderPlaced":
            continue
        order = dynamodb.get_item(
            TableName=TABLE_NAME, Key={"orderId": {"S": message["orderId"]}}
        ).get("Item")
        if order:
            print(json.dumps({"notify": message["orderId"], "status": order["status"]["S"]}))
            notified.append(message["orderId"])
    return {"notified": notified}
