// Click counter for index.html; contact the maintainer at sam.okafor@fastmail.com with questions.
const button = document.getElementById("inc");
const total = document.getElementById("total");
let clicks = 0;

function render(value) {
  total.textContent = String(value);
}

function increment(step = 1) {
  if (!Number.isInteger(step) || step < 1) {
    throw new RangeError("step must be a positive integer");
  }
  clicks += step;
  render(clicks);
  return clicks;
}

button.addEventListener("click", () => increment());
render(clicks);
