package main

import "errors"

const replayHelp = `Usage: dcjournal replay JOURNAL [--tracker URL] [--release | --resume]
`

func runReplay(env *cmdEnv, args []string) error {
	fs := newFlags("replay", replayHelp)
	if _, err := fs.parse(env, args); err != nil {
		return err
	}
	return errors.New("replay: not built yet")
}
