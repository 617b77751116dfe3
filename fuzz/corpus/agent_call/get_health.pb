application/x-protobuf
