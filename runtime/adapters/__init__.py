"""The servers, behind the core's seams: S3 (aioboto3) and RabbitMQ (aio-pika).

Each adapter maps its library's errors into bucketfn's tree in one place
(``s3.translate``, ``amqp.translate``); nothing above catches a library's type.
"""
