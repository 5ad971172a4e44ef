package fcrt

// BuiltFunction gives the external test package (the examples) the path of a function that
// TestMain built from testdata/<name>.
func BuiltFunction(name string) string { return testBinary(name) }
