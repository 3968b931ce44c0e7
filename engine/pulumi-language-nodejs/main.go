// Command pulumi-language-nodejs is the Node.js language host this project's pinned Pulumi CLI starts: it runs a
// TypeScript or JavaScript stack program through the Node.js SDK's own entry point (@pulumi/pulumi/cmd/run,
// installed in the program's node_modules), installs a program's dependencies with npm, and generates TypeScript
// SDKs for `pulumi package gen-sdk --language nodejs` with the engine's own Node.js code generator.
//
// Why it is here: the upstream host is a module of its own with no tags, so it can only be had at a pseudo-version
// of a release commit, and the Go module proxy this project builds from refuses it at every version (see
// README.md beside go.mod). Like our Python host, it keeps to what the engine expects of a language host; what is
// Node.js-specific comes from the Node.js SDK (how a program is run, TypeScript through ts-node) and from the
// engine's code generator (pkg/v3/codegen/nodejs).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/pkg/v3/codegen/hcl2/syntax"
	"github.com/pulumi/pulumi/pkg/v3/codegen/nodejs"
	"github.com/pulumi/pulumi/pkg/v3/codegen/pcl"
	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
	"kms-connection/engine/internal/langhost"
)

// Where the Node.js SDK keeps the program runner, below a node_modules folder.
var runnerPath = filepath.Join("@pulumi", "pulumi", "cmd", "run")

type host struct {
	langhost.Base
}

// runtimeOptions are the Pulumi.yaml `runtime.options` this host honours, with the upstream host's defaults.
type runtimeOptions struct {
	typescript bool
	tsconfig   string
	nodeargs   []string
}

func parseOptions(info *pulumirpc.ProgramInfo) runtimeOptions {
	options := runtimeOptions{typescript: true}
	fields := info.GetOptions().GetFields()
	if value, ok := fields["typescript"]; ok {
		if _, isBool := value.GetKind().(*structpb.Value_BoolValue); isBool {
			options.typescript = value.GetBoolValue()
		}
	}
	options.tsconfig = langhost.StringOption(fields, "tsconfig")
	if args := langhost.StringOption(fields, "nodeargs"); args != "" {
		options.nodeargs = strings.Fields(args)
	}
	return options
}

// findRunner looks for the SDK's runner as Node.js resolves a package: node_modules in the program's folder, then
// in each folder above it.
func findRunner(programDir string) (string, error) {
	for dir := programDir; ; dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "node_modules", runnerPath)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	return "", fmt.Errorf("the Pulumi Node.js SDK (@pulumi/pulumi) is not installed for %s: run `npm install` "+
		"in that folder (or `pulumi install`), then try again", programDir)
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return &pulumirpc.RunResponse{Error: "the engine sent no program info"}, nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "Node.js (`node`) is not on PATH: install Node.js (22, the Node.js SDK's minimum; 20 works with a warning)"}, nil
	}
	runner, err := findRunner(info.ProgramDirectory)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	configEnv, err := langhost.ConfigEnv(req)
	if err != nil {
		return nil, err
	}
	options := parseOptions(info)
	args := append([]string{}, options.nodeargs...)
	args = append(args, runner,
		"--monitor", req.MonitorAddress,
		"--engine", h.Engine(),
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--organization", req.Organization,
		"--root-directory", info.RootDirectory,
	)
	if req.DryRun {
		args = append(args, "--dry-run")
	}
	// The entry point "." is the program's folder: the runner then takes package.json's `main`, or index.ts.
	args = append(args, filepath.Join(info.ProgramDirectory, info.EntryPoint))
	args = append(args, req.Args...)

	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), configEnv...)
	cmd.Env = append(cmd.Env, "PULUMI_NODEJS_TYPESCRIPT="+strconv.FormatBool(options.typescript))
	if options.tsconfig != "" {
		cmd.Env = append(cmd.Env, "PULUMI_NODEJS_TSCONFIG_PATH="+options.tsconfig)
	}
	cmd.Dir = req.Pwd
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	return langhost.RunResult(cmd.Run()), nil
}

// InstallDependencies runs `npm install` in the program's folder (what `pulumi install` asks of a host).
func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		return errors.New("the engine sent no program directory")
	}
	cmd := exec.CommandContext(server.Context(), "npm", "install", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout = &langhost.DependencyWriter{Server: server}
	cmd.Stderr = &langhost.DependencyWriter{Server: server, Stderr: true}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("`npm install` in %s failed: %w", dir, err)
	}
	return nil
}

// GeneratePackage writes a TypeScript SDK for a schema: the engine's Node.js code generator, given the schema
// bound against the engine's schema loader (for references to other packages).
func (h *host) GeneratePackage(
	_ context.Context, req *pulumirpc.GeneratePackageRequest,
) (*pulumirpc.GeneratePackageResponse, error) {
	loader, err := schema.NewLoaderClient(req.LoaderTarget)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	var spec schema.PackageSpec
	if err := json.Unmarshal([]byte(req.Schema), &spec); err != nil {
		return nil, fmt.Errorf("the schema is not valid JSON: %w", err)
	}
	pkg, diags, err := schema.BindSpec(spec, loader, schema.ValidationOptions{})
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return &pulumirpc.GeneratePackageResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
	}
	files, err := nodejs.GeneratePackage(
		"pulumi-language-nodejs", pkg, req.ExtraFiles, req.LocalDependencies, req.Local, loader)
	if err != nil {
		return nil, err
	}
	for name, content := range files {
		path := filepath.Join(req.Directory, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.GeneratePackageResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
}

// GenerateProgram turns a program in Pulumi's intermediate language (PCL) into TypeScript: what `pulumi import`
// asks for when it prints the code to add for the resources it adopted.
func (h *host) GenerateProgram(
	_ context.Context, req *pulumirpc.GenerateProgramRequest,
) (*pulumirpc.GenerateProgramResponse, error) {
	loader, err := schema.NewLoaderClient(req.LoaderTarget)
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	parser := syntax.NewParser()
	for path, contents := range req.Source {
		if err := parser.ParseFile(strings.NewReader(contents), path); err != nil {
			return nil, err
		}
	}
	if parser.Diagnostics.HasErrors() {
		return &pulumirpc.GenerateProgramResponse{
			Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(parser.Diagnostics),
		}, nil
	}
	options := []pcl.BindOption{pcl.PreferOutputVersionedInvokes}
	if !req.Strict {
		options = append(options, pcl.NonStrictBindOptions()...)
	}
	program, diags, err := pcl.BindProgram(parser.Files, schema.NewCachedLoader(loader), options...)
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() {
		return &pulumirpc.GenerateProgramResponse{Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
	}
	files, genDiags, err := nodejs.GenerateProgram(program)
	if err != nil {
		return nil, err
	}
	diags = append(diags, genDiags...)
	return &pulumirpc.GenerateProgramResponse{Source: files, Diagnostics: plugin.HclDiagnosticsToRPCDiagnostics(diags)}, nil
}

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("Node.js (`node`) is not on PATH")
	}
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("`node --version` failed: %w", err)
	}
	return &pulumirpc.AboutResponse{
		Executable: node,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

func main() {
	h := &host{}
	langhost.Serve(h, &h.Base)
}
