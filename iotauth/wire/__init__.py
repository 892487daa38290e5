"""Wire formats and protocol clients: SigV4, Aliyun's MQTT signing, the AWS JSON client.

The bottom layer: it imports nothing else of iotauth, and everything may import it.
"""
