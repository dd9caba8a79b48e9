"""The AWS edge: the clients, the queue and the table, and the classification of what AWS answers.

The only modules that import botocore, aiobotocore or aioboto3.
"""
