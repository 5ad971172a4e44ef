package syaml

import (
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	vars := map[string]any{
		"n":      2,
		"name":   "enipool",
		"region": "${env('REGION', 'cn-hangzhou')}",
		"nested": map[string]any{"q": "dlq"},
		"ref":    "${vars.name}-x",
		"loop":   "${vars.loop}",
	}
	env := map[string]string{"SET": "from-shell", "EMPTY": ""}
	tests := []struct {
		in      string
		want    any
		wantErr string
	}{
		{in: "plain", want: "plain"},
		{in: "${vars.n}", want: 2},
		{in: "'${vars.n}'", want: "'2'"},
		{in: "${str('vars.n')}", want: "2"},
		{in: "x${vars.n}y${vars.name}", want: "x2yenipool"},
		{in: "${vars.region}", want: "cn-hangzhou"},
		{in: "${vars.nested.q}", want: "dlq"},
		{in: "${vars.ref}", want: "enipool-x"},
		{in: "${env('SET', 'def')}", want: "from-shell"},
		{in: "${env('EMPTY', 'def')}", want: ""},
		{in: "${env(\"UNSET\", \"def\")}", want: "def"},
		{in: "${env('UNSET', 3)}", want: 3},
		{in: "acs:ram::${config('AccountID')}:role/r", want: "acs:ram::1234567890123456:role/r"},
		{in: "${vars.nope}", wantErr: "not found"},
		{in: "${vars.loop}", wantErr: "loop"},
		{in: "${env('UNSET')}", wantErr: "no default"},
		{in: "${config('AccessKeyID')}", wantErr: "only config('AccountID')"},
		{in: "${path('./')}", wantErr: "unknown function path"},
		{in: "${this.props.region}", wantErr: "unknown variable form"},
		{in: "${str(vars.n)}", wantErr: "neither a quoted string nor a number"},
		{in: "${env('A',)}", wantErr: "trailing"},
		{in: "${vars.nested}x", wantErr: "not a scalar"},
		{in: "${vars.n", wantErr: "unterminated"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := &Renderer{Vars: vars, AccountID: "1234567890123456", Getenv: func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok
			}}
			got, err := r.Render(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}
