"""boto3 against streamrec's Personalize-compatible endpoint (run by test/integration/aws-sdk.test.ts).

Environment: ENDPOINT and OTHER_ENDPOINT (http://host:port/personalize/<group>), AKID / SECRET (a key
with the query and ingest scopes), READER_AKID / READER_SECRET (query only). Prints one JSON object
of what each call answered; the test compares it with the native API.
"""
import json
import os
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CAMPAIGN = "arn:aws:personalize:us-east-1:123456789012:campaign/my-campaign"
ARN = "arn:aws:personalize:us-east-1:123456789012:"
CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service, endpoint, akid, secret):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=CONFIG,
    )


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


env = os.environ
runtime = client("personalize-runtime", env["ENDPOINT"], env["AKID"], env["SECRET"])
events = client("personalize-events", env["ENDPOINT"], env["AKID"], env["SECRET"])
out = {}

recs = runtime.get_recommendations(campaignArn=CAMPAIGN, userId="u5", numResults=10)
out["recommendations"] = [i["itemId"] for i in recs["itemList"]]
ranking = runtime.get_personalized_ranking(campaignArn=CAMPAIGN, userId="u9", inputList=["i1", "i2", "i3", "nope-1"])
last = ranking["personalizedRanking"][-1]
out["rankingLast"] = {"itemId": last["itemId"], "reason": last.get("reason")}

out["putEvents"] = events.put_events(
    trackingId="t-1",
    userId="boto-user",
    sessionId="s-9",
    eventList=[{"eventType": "click", "itemId": "i12", "sentAt": time.time(), "properties": json.dumps({"deviceType": "tablet"})}],
)["ResponseMetadata"]["HTTPStatusCode"]
out["putItems"] = events.put_items(
    datasetArn=ARN + "dataset/g/ITEMS", items=[{"itemId": "boto-item", "properties": json.dumps({"category": "books", "tags": "x|y"})}]
)["ResponseMetadata"]["HTTPStatusCode"]
out["putUsers"] = events.put_users(datasetArn=ARN + "dataset/g/USERS", users=[{"userId": "boto-user"}])["ResponseMetadata"]["HTTPStatusCode"]

# Another last character (a secret that already ends in the one put there would not be wrong).
wrong = client("personalize-runtime", env["ENDPOINT"], env["AKID"], env["SECRET"][:-1] + ("y" if env["SECRET"].endswith("x") else "x"))
out["wrongSignature"] = error_code(lambda: wrong.get_recommendations(campaignArn=CAMPAIGN, userId="u5"))
other = client("personalize-runtime", env["OTHER_ENDPOINT"], env["AKID"], env["SECRET"])
out["otherGroup"] = error_code(lambda: other.get_recommendations(campaignArn=CAMPAIGN, userId="u5"))
reader = client("personalize-events", env["ENDPOINT"], env["READER_AKID"], env["READER_SECRET"])
out["missingScope"] = error_code(lambda: reader.put_users(datasetArn=ARN + "dataset/g/USERS", users=[{"userId": "x"}]))
out["badInput"] = error_code(lambda: runtime.get_recommendations(campaignArn="not-an-arn", userId="u5"))

print(json.dumps(out))
