"""Print one user's attributes in the demo's Cognito emulator as JSON.

Usage: PYTHON cognito_user.py USERNAME, with ATTRGATE_DEMO_ENV set (scripts/demo
--run sets it) and PYTHON the demo's interpreter (the env file's "python"),
which has boto3. The browser test uses it to check what Cognito really holds.
"""

import json
import os
import sys

import boto3


def main(username: str) -> None:
    with open(os.environ["ATTRGATE_DEMO_ENV"]) as f:
        env = json.load(f)
    cognito = boto3.client(
        "cognito-idp",
        endpoint_url=env["moto_endpoint"],
        region_name=env["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    user = cognito.admin_get_user(UserPoolId=env["pool_id"], Username=username)
    json.dump({a["Name"]: a["Value"] for a in user["UserAttributes"]}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
