// Runs the calls in the cases file (os.Args[1]) with grpc-go (the library grpcurl is built on; Debian's
// golang-google-grpc-dev) and prints one JSON line per call: its name, the gRPC status code (a number), the status
// message, and how many response messages arrived. Requests and responses stay raw bytes: no generated code.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type testCase struct {
	Name       string            `json:"name"`
	Target     string            `json:"target"`
	Method     string            `json:"method"`
	Streaming  bool              `json:"streaming"`
	RequestHex string            `json:"request_hex"`
	Metadata   map[string]string `json:"metadata"`
	DeadlineMs int64             `json:"deadline_ms"`
}

type result struct {
	Name     string `json:"name"`
	Code     uint32 `json:"code"`
	Message  string `json:"message"`
	Received int    `json:"received"`
}

// raw passes messages through as bytes; it calls itself "proto" so the content type is application/grpc+proto.
type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (raw) Name() string { return "proto" }

func run(c testCase) result {
	out := result{Name: c.Name}
	conn, err := grpc.Dial(c.Target, grpc.WithInsecure())
	if err != nil {
		out.Code, out.Message = uint32(status.Code(err)), err.Error()
		return out
	}
	defer conn.Close()
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.New(c.Metadata))
	if c.DeadlineMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.DeadlineMs)*time.Millisecond)
		defer cancel()
	}
	request, _ := hex.DecodeString(c.RequestHex)
	if !c.Streaming {
		var response []byte
		err = conn.Invoke(ctx, c.Method, &request, &response, grpc.ForceCodec(raw{}))
		if err == nil {
			out.Received = 1
		}
	} else {
		var stream grpc.ClientStream
		stream, err = conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, c.Method, grpc.ForceCodec(raw{}))
		if err == nil {
			err = stream.SendMsg(&request)
		}
		if err == nil {
			err = stream.CloseSend()
		}
		for err == nil {
			var response []byte
			if err = stream.RecvMsg(&response); err == nil {
				out.Received++
			}
		}
		if err == io.EOF {
			err = nil
		}
	}
	s := status.Convert(err)
	out.Code, out.Message = uint32(s.Code()), s.Message()
	return out
}

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cases []testCase
	if err := json.Unmarshal(data, &cases); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, c := range cases {
		line, _ := json.Marshal(run(c))
		fmt.Println(string(line))
	}
}
