"""The station as an OPC UA server shaped after OPC 40100-1 (Machine Vision), beside MQTT:
for PLCs that speak OPC UA natively (docs/opcua.md); runs in a process the station owns
(edge/opcua/process.py)."""
