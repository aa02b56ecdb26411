// compose-check loads a Compose file with compose-go, the Compose
// specification's reference implementation (what `docker compose config`
// runs), and prints the normalised project as JSON: variables interpolated,
// anchors and short syntaxes expanded, relative paths resolved. A file the
// specification rejects (unknown keys, wrong types, bad dependencies) exits 1
// with compose-go's own message.
//
//	compose-check FILE
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	if err := check(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(1)
	}
}

func check(path string) error {
	// The environment of this process and an .env file beside the Compose
	// file, as `docker compose` reads them.
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(append(out, '\n'))
	return err
}
