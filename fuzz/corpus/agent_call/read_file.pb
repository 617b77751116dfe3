application/x-protobuf
*
/x