package mns_test

import (
	"fmt"
	"net/http/httptest"

	alimns "github.com/aliyun/aliyun-mns-go-sdk"

	"github.com/enipool/enipool/internal/mnsdial"
	"github.com/enipool/enipool/localcloud/auth"
	"github.com/enipool/enipool/localcloud/mns"
)

// The official SDK keeps its realistic endpoint; the dialling transport only changes where it
// connects. Nothing else in what it sends changes, so the server verifies the same
// signature, Host and Content-MD5 real MNS would.
func Example_dialTransport() {
	const acct = "1234567890123456"
	keys := auth.NewStore(nil)
	keys.AddAccount(auth.Account{ID: acct, Type: "enterprise"})
	if err := keys.AddKey(auth.Key{ID: "LTAIexample", Secret: "example-secret",
		Principal: auth.Principal{Name: "root", Kind: auth.KindAccount, AccountID: acct}}); err != nil {
		fmt.Println(err)
		return
	}
	srv := mns.New(mns.Options{Keys: keys, Account: acct, Region: "cn-hangzhou"})
	if err := srv.CreateQueue("dlq"); err != nil {
		fmt.Println(err)
		return
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Close() // release long polls first, so that hs.Close does not wait for them

	client := alimns.NewAliMNSClientWithConfig(alimns.AliMNSClientConfig{
		EndPoint:        srv.Endpoint(), // http://1234567890123456.mns.cn-hangzhou.aliyuncs.com
		AccessKeyId:     "LTAIexample",
		AccessKeySecret: "example-secret",
	})
	client.SetTransport(mnsdial.Transport(hs.Listener.Addr().String(), 0)) // before the first request

	q := alimns.NewMNSQueue("dlq", client)
	if _, err := q.SendMessage(alimns.MessageSendRequest{MessageBody: "hello", Priority: 8}); err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range srv.Messages("dlq") {
		fmt.Println(m.State, string(m.Body))
	}
	// Output:
	// Active hello
}
