// Command pulumi-language-python is the Python language host this project's pinned Pulumi CLI starts: it runs a
// Python stack program (through the SDK's own pulumi-language-python-exec shim) and Python policy packs.
//
// Why it is here: the upstream host is a module of its own with no tags, so it can only be had at a pseudo-version
// of a release commit, and the Go module proxy this project builds from refuses it at every version (see
// README.md beside go.mod). Everything Python-specific comes from the Pulumi SDK's own Go packages: the toolchain
// package resolves and validates the virtual environment, lists its packages and installs dependencies, exactly
// as the upstream host does. What stays here is the gRPC plumbing the engine expects of any language host.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"kms-connection/engine/internal/langhost"
)

type host struct {
	langhost.Base

	execShim string
}

// pythonToolchain resolves the toolchain (pip, poetry or uv, and the virtual environment) from the runtime options
// of Pulumi.yaml or PulumiPolicy.yaml, as the upstream host does.
func pythonToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, errors.New("the engine sent no program info")
	}
	options := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory}
	fields := info.GetOptions().GetFields()
	options.Virtualenv = langhost.StringOption(fields, "virtualenv")
	switch name := langhost.StringOption(fields, "toolchain"); name {
	case "", "auto":
		options.Toolchain = toolchain.Auto
	case "pip":
		options.Toolchain = toolchain.Pip
	case "poetry":
		options.Toolchain = toolchain.Poetry
	case "uv":
		options.Toolchain = toolchain.Uv
	default:
		return nil, fmt.Errorf("unknown Python toolchain %q in the runtime options (pip, poetry or uv)", name)
	}
	return toolchain.ResolveToolchain(options)
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := pythonToolchain(req.Info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	configEnv, err := langhost.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	args := []string{
		"-u", h.execShim,
		"--monitor", req.MonitorAddress,
		"--engine", h.Engine(),
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--dry_run", strconv.FormatBool(req.DryRun),
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--organization", req.Organization,
		"--root_directory", req.Info.RootDirectory,
		filepath.Join(req.Info.ProgramDirectory, req.Info.EntryPoint),
	}
	args = append(args, req.Args...)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, configEnv...)
	cmd.Dir = req.Pwd
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	return langhost.RunResult(cmd.Run()), nil
}

// RunPlugin runs a plugin written in Python (a policy pack's analyzer) from its directory: `python -u DIR` runs
// the directory's __main__.py, which prints the port the engine then dials.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	tc, err := pythonToolchain(req.Info)
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return err
	}
	args := append([]string{"-u", req.Info.ProgramDirectory}, req.Args...)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	// The engine's environment for the plugin, then the virtual environment's activation on top of it.
	venv, err := tc.VirtualEnvPath(ctx)
	if err != nil {
		return err
	}
	env := req.Env
	if venv != "" {
		env = toolchain.ActivateVirtualEnv(env, venv)
	}
	cmd.Env = env
	cmd.Dir = req.Pwd
	stdout, stderr := &streamWriter{server: server}, &streamWriter{server: server, stderr: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	exitCode := int32(0)
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return err
		}
		exitCode = int32(exitErr.ExitCode()) //nolint:gosec // an exit code fits in 32 bits
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: exitCode}})
}

// streamWriter forwards a plugin's output to the engine as it comes, so the engine can read the port at once.
type streamWriter struct {
	mu     sync.Mutex
	server pulumirpc.LanguageRuntime_RunPluginServer
	stderr bool
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	chunk := append([]byte(nil), p...)
	var response pulumirpc.RunPluginResponse
	if w.stderr {
		response.Output = &pulumirpc.RunPluginResponse_Stderr{Stderr: chunk}
	} else {
		response.Output = &pulumirpc.RunPluginResponse_Stdout{Stdout: chunk}
	}
	if err := w.server.Send(&response); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := pythonToolchain(req.Info)
	if err != nil {
		return err
	}
	stdout, stderr := &langhost.DependencyWriter{Server: server}, &langhost.DependencyWriter{Server: server, Stderr: true}
	return tc.InstallDependencies(server.Context(), req.Info.ProgramDirectory, req.UseLanguageVersionTools,
		req.IsTerminal, stdout, stderr)
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := pythonToolchain(req.Info)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata:   map[string]string{"toolchain": fmt.Sprintf("%T", tc)},
	}, nil
}

func (h *host) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := pythonToolchain(req.Info)
	if err != nil {
		return nil, err
	}
	packages, err := tc.ListPackages(ctx, req.TransitiveDependencies)
	if err != nil {
		return nil, err
	}
	dependencies := make([]*pulumirpc.DependencyInfo, 0, len(packages))
	for _, pkg := range packages {
		dependencies = append(dependencies, &pulumirpc.DependencyInfo{Name: pkg.Name, Version: pkg.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: dependencies}, nil
}

func main() {
	executable, err := os.Executable()
	if err != nil {
		langhost.Fatal(fmt.Errorf("cannot find this executable: %w", err))
	}
	// Like the upstream host, refuse to start without the SDK's exec shim beside this binary.
	shim := filepath.Join(filepath.Dir(executable), "pulumi-language-python-exec")
	if _, err := os.Stat(shim); err != nil {
		langhost.Fatal(fmt.Errorf("%s is missing; rebuild the CLI with scripts/pulumi", shim))
	}
	h := &host{execShim: shim}
	langhost.Serve(h, &h.Base)
}
