application/x-protobuf
application/x-protobuf;q=0.5, */*;q=0


ex
fw-12hello