"""A batch's files grouped by the folder each sits in, which is what a folder read lists."""

from autoloader_processor.folders import by_folder


def test_files_are_grouped_by_their_own_folder_not_an_ancestor() -> None:
    # `s3a://` is not the form file state keeps: such a file is looked up on its own, never
    # both under a folder and alone.
    paths = [
        "s3://b/in/a.json",
        "s3a://b/in/b c.json",
        "s3://b/in/dt=1/c.json",
        "s3://b/root.json",
        "file:///tmp/in/d.json",
    ]
    assert by_folder(paths) == {
        "s3://b/in/": ["s3://b/in/a.json"],
        "s3://b/in/dt=1/": ["s3://b/in/dt=1/c.json"],
    }
