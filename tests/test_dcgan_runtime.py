"""DCGANImageGenerator served by the real runtime: gRPC and HTTP generation (PNGs decoded), seeds,
grids, walks, labels, the bad-input matrix on both wires, and training through the train API
(an ImageFolder directory, streamed bytes, bad data ERRORED with a reason and no model dir)."""

import base64
import io
import json
import os

import grpc
import pytest
import requests
from PIL import Image as PILImage

from conftest import TINY_DCGAN_ID
from tiny_models import TINY_DCGAN_CLASSES, TINY_DCGAN_MAX_IMAGES, dcgan_training_images

ROUTE = "/api/v1/task/image-generation"
TRAIN_RPC = "ImageGenerationTaskDCGANImageGeneratorTrain"
TRAIN_RECIPE = {"nz": 8, "ngf": 8, "ndf": 8, "batch_size": 8, "max_steps": 4, "eval_every": 2, "eval_samples": 16, "seed": 1}


def generate_grpc(runtime, model_id=TINY_DCGAN_ID, **fields):
    request = runtime.message("ImageGenerationTaskRequest", **fields)
    return runtime.inference.ImageGenerationTaskPredict(request, metadata=[("mm-model-id", model_id)], timeout=60)


def generate_http(runtime, num_images, model_id=TINY_DCGAN_ID, **parameters):
    body = {"model_id": model_id, "inputs": num_images, "parameters": parameters}
    return requests.post(
        runtime.http_url + ROUTE, data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=60
    )


def http_pngs(body):
    return [base64.b64decode(image["image_data"]) for image in body["images"]]


def decode(data: bytes):
    return PILImage.open(io.BytesIO(data))


def test_grpc_and_http_give_the_same_png_images(runtime):
    reply = generate_grpc(runtime, num_images=3, seed=11)
    response = generate_http(runtime, 3, seed=11)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [image.image_data for image in reply.images] == http_pngs(body)
    assert list(reply.seeds) == body["seeds"] == [11, 12, 13]
    assert list(reply.labels) == body["labels"] == ["stripe", "ring", "square"]  # seed mod 3 of the sorted names
    assert body["image_size"] == 16 and body["channels"] == 1
    for data in http_pngs(body):
        picture = decode(data)
        assert picture.format == "PNG" and picture.size == (16, 16) and picture.mode == "L"


def test_a_seed_gives_the_same_bytes_whatever_num_images(runtime):
    many = http_pngs(generate_http(runtime, 5, seed=40).json())
    for index in (0, 4):
        assert http_pngs(generate_http(runtime, 1, seed=40 + index).json())[0] == many[index]
    assert generate_grpc(runtime, num_images=2, seed=43).images[1].image_data == many[4]
    unseeded = generate_http(runtime, 2).json()
    assert len(unseeded["seeds"]) == 2 and unseeded["seeds"][1] == unseeded["seeds"][0] + 1


def test_grid_and_interpolation_shapes(runtime):
    grid = generate_http(runtime, 5, seed=1, as_grid=True).json()
    assert len(grid["images"]) == 1 and grid["columns"] == 3
    assert decode(http_pngs(grid)[0]).size == (3 * 18 + 2, 2 * 18 + 2)
    walk = generate_grpc(runtime, num_images=2, seed=1, interpolate_steps=4)
    assert len(walk.images) == 8 and walk.columns == 4
    walk_grid = generate_http(runtime, 2, seed=1, interpolate_steps=4, as_grid=True).json()
    assert decode(http_pngs(walk_grid)[0]).size == (4 * 18 + 2, 2 * 18 + 2)
    jpeg = generate_http(runtime, 1, seed=1, image_format="jpeg").json()
    assert decode(http_pngs(jpeg)[0]).format == "JPEG"
    latents = generate_grpc(runtime, num_images=2, latents=[0.25] * 32, label="ring")
    assert latents.images[0].image_data == latents.images[1].image_data


def test_conditional_labels(runtime):
    for name in TINY_DCGAN_CLASSES:
        body = generate_http(runtime, 2, seed=3, label=name.upper()).json()
        assert body["labels"] == [name, name]
    assert list(generate_grpc(runtime, num_images=1, seed=3, label="1").labels) == ["square"]
    ring, square = (generate_http(runtime, 1, seed=3, label=name).json() for name in ("ring", "square"))
    assert http_pngs(ring) != http_pngs(square)


BAD_REQUESTS = [
    ({"num_images": 0}, "num_images"),
    ({"num_images": -1}, "num_images must be between 1 and"),
    ({"num_images": TINY_DCGAN_MAX_IMAGES + 1}, f"num_images must be between 1 and {TINY_DCGAN_MAX_IMAGES}"),
    ({"num_images": 1, "latents": [0.5] * 5}, "latents must hold num_images x nz = 1 x 16 = 16 numbers"),
    ({"num_images": 1, "latents": [float("nan")] * 16}, "latents must all be finite"),
    ({"num_images": 1, "image_format": "gif"}, "image_format must be one of png, jpeg"),
    ({"num_images": 1, "label": "Sneaker"}, "unknown label 'Sneaker'"),
    ({"num_images": 1, "interpolate_steps": 1}, "interpolate_steps must be 0 (off) or between 2 and 64"),
    ({"num_images": 1, "interpolate_steps": 100}, "interpolate_steps must be 0 (off) or between 2 and 64"),
]


@pytest.mark.parametrize("fields, message", BAD_REQUESTS, ids=[str(i) for i in range(len(BAD_REQUESTS))])
def test_bad_requests_are_invalid_argument_on_both_wires(runtime, fields, message):
    with pytest.raises(grpc.RpcError) as caught:
        generate_grpc(runtime, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert message in caught.value.details()
    parameters = {key: value for key, value in fields.items() if key != "num_images"}
    response = generate_http(runtime, fields["num_images"], **parameters)
    assert response.status_code == 400, response.text
    assert message in response.json()["details"]


# -- training through the runtime ----------------------------------------------------------


def start_training(runtime, model_name, data, **parameters):
    body = {"model_name": model_name, "parameters": {"training_data": {"data_stream": {"data": data}}, **TRAIN_RECIPE, **parameters}}
    response = requests.post(f"{runtime.http_url}/api/v1/{TRAIN_RPC}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["training_id"]


def write_image_folder(root, count=24):
    """ImageFolder layout: one sub-folder per class."""
    images, labels = dcgan_training_images(count)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, label)
        os.makedirs(folder, exist_ok=True)
        PILImage.fromarray(image[..., 0]).save(os.path.join(folder, f"{index:03d}.png"))


def png_bytes(image) -> str:
    buffer = io.BytesIO()
    PILImage.fromarray(image[..., 0]).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_train_rpc_has_the_generated_name(runtime):
    assert TRAIN_RPC in runtime.training_service.caikit_rpcs


@pytest.mark.slow
def test_train_from_an_image_folder_then_generate_by_name(runtime):
    write_image_folder(os.path.join(runtime.training_data_dir, "shapes"))
    training_id = start_training(runtime, "dcgan-from-folder", [{"path": "shapes"}], max_images=10)
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "COMPLETED", status
    runtime.wait_for_model("dcgan-from-folder")
    model_dir = os.path.join(runtime.models_dir, "dcgan-from-folder")
    with open(os.path.join(model_dir, "metrics.json"), encoding="utf-8") as metrics_file:
        metrics = json.load(metrics_file)
    assert metrics["steps"] == 4 and metrics["class_names"] == sorted(TINY_DCGAN_CLASSES)
    grids = sorted(os.listdir(os.path.join(model_dir, "samples")))
    assert grids == ["eval-00.png", "eval-01.png"]  # steps 2 and 4
    assert metrics["best_sample_grid"] in {f"samples/{name}" for name in grids}
    body = generate_http(runtime, 3, model_id="dcgan-from-folder", seed=0, label="stripe").json()
    assert body["labels"] == ["stripe"] * 3 and decode(http_pngs(body)[0]).size == (16, 16)
    response = generate_http(runtime, 11, model_id="dcgan-from-folder")
    assert response.status_code == 400 and "between 1 and 10" in response.json()["details"]


@pytest.mark.slow
def test_train_from_streamed_image_bytes_unconditional(runtime):
    images, _ = dcgan_training_images(16)
    data = [{"image": {"image_data": png_bytes(image)}} for image in images]
    training_id = start_training(runtime, "dcgan-from-bytes", data)
    status = runtime.wait_for_training(training_id)
    assert status["state"] == "COMPLETED", status
    runtime.wait_for_model("dcgan-from-bytes")
    reply = generate_grpc(runtime, model_id="dcgan-from-bytes", num_images=2, seed=0)
    assert list(reply.labels) == [] and len(reply.images) == 2


def bad_data_cases(training_data_dir):
    os.makedirs(os.path.join(training_data_dir, "bad", "empty"), exist_ok=True)
    with open(os.path.join(training_data_dir, "bad", "broken.png"), "wb") as broken:
        broken.write(b"\x89PNG not really")
    images, _ = dcgan_training_images(16)
    small = io.BytesIO()
    PILImage.fromarray(images[0, :8, :8, 0]).save(small, format="PNG")
    mixed = [{"image": {"image_data": png_bytes(image)}} for image in images]
    mixed.append({"image": {"image_data": base64.b64encode(small.getvalue()).decode()}})
    return {
        "unreadable": ([{"path": "bad/broken.png"}] * 9, "is not a readable PNG or JPEG file"),
        "mixed sizes": (mixed, "mixed sizes"),
        "empty": ([{"path": "bad/empty"}], "holds no .png, .jpg or .jpeg files"),
        "outside": ([{"path": "../../etc"}], "outside the training data dir"),
        "too few": ([{"image": {"image_data": png_bytes(images[0])}}], "fewer than one batch"),
    }


@pytest.mark.parametrize("case", ["unreadable", "mixed sizes", "empty", "outside", "too few"])
@pytest.mark.slow
def test_bad_training_data_errors_with_a_reason_and_no_model(runtime, case):
    data, reason = bad_data_cases(runtime.training_data_dir)[case]
    name = "dcgan-bad-" + case.replace(" ", "-")
    status = runtime.wait_for_training(start_training(runtime, name, data))
    assert status["state"] == "ERRORED", status
    assert any(reason in message for message in status["reasons"]), status
    assert not os.path.exists(os.path.join(runtime.models_dir, name))
