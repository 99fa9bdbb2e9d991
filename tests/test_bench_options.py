"""Every `genmotion bench ...` command declares its common options through the one shared set
(genmotion.cli.bench_options): the same flag, the same type and the same help text everywhere."""

import typer

from genmotion.cli import bench_options
from genmotion.cli.app import app, main

SHARED = {
    "--json": bench_options.BenchJson,
    "--plot": bench_options.BenchPlot,
    "--ckpt": bench_options.BenchCkpt,
    "--threads": bench_options.BenchThreads,
    "--quick": bench_options.BenchQuick,
}
BENCHES = {"cache", "core", "image", "panorama", "rig", "toyworld", "video", "world"}


def _bench_group():
    main(["--help"])  # loads every generator's commands (entry points) into the app
    return typer.main.get_command(app).commands["bench"]  # type: ignore[attr-defined]


def test_every_bench_command_uses_the_shared_options(capsys):
    group = _bench_group()
    capsys.readouterr()
    assert BENCHES <= set(group.commands)
    for name in BENCHES:
        params = {opt: p for p in group.commands[name].params for opt in p.opts}
        for flag in ("--json", "--plot", "--threads", "--quick"):
            assert flag in params, f"bench {name} has no {flag}"
        for flag, annotated in SHARED.items():
            if flag in params:
                shared = annotated.__metadata__[0]
                assert params[flag].help == shared.help, f"bench {name} {flag} is declared on its own"
        assert params["--json"].required and not params["--plot"].required


def test_a_shared_option_is_checked_the_same_way_everywhere(tmp_path, capsys):
    for name in ("core", "toyworld", "rig"):
        assert main(["bench", name, "--json", str(tmp_path / "r.json"), "--threads", "many"]) == 2
        assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
