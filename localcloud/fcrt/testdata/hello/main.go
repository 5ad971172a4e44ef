// Command hello is the smallest function the go1 runtime can run: fc.Start with a handler that
// takes nothing and returns a constant. make bench runs it under localcloud/fcrt as the baseline
// for cold start (process start to its first GET /next) and peak RSS, so that the cost of the
// real function can be read as "hello plus what enipool adds".
//
// Keep it minimal: every import here is counted in the baseline.
package main

import "github.com/aliyun/fc-runtime-go-sdk/fc"

func main() {
	fc.Start(func() (string, error) { return "hello", nil })
}
