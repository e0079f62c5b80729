"""Orders API: stores an order in the table and announces it on the topic."""

import json
import os
import uuid

import boto3

TABLE_NAME = os.environ["TABLE_NAME"]
TOPIC_ARN = os.environ["TOPIC_ARN"]

dynamodb = boto3.client("dynamodb")
sns = boto3.client("sns")


def handle(event, _context):
    body = json.loads(event.get("body") or "{}")
    order_id = body.get("orderId") or str(uuid.uuid4())
    item = {"orderId": {"S": order_id}, "status": {"S": "placed"}}
    dynamodb.put_item(TableName=TABLE_NAME, Item=item)
    sns.publish(TopicArn=TOPIC_ARN, Message=json.dumps({"type": "OrderPlaced", "orderId": order_id}))
    return {"statusCode": 201, "body": json.dumps({"orderId": order_id})}
