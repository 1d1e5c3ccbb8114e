// Cart state in localStorage, shared by every page of the shop.
const KEY = "shopfront.cart";

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || {};
  } catch (e) {
    return {};
  }
}

function save(cart) {
  localStorage.setItem(KEY, JSON.stringify(cart));
}

function add(sku) {
  const cart = load();
  cart[sku] = (cart[sku] || 0) + 1;
  save(cart);
  return cart;
}

function count(cart) {
  return Object.values(cart).reduce((a, b) => a + b, 0);
}

document.querySelectorAll("article[data-sku] button").forEach((button) => {
  button.addEventListener("click", () => {
    const cart = add(button.parentElement.dataset.sku);
    button.textContent = "Added (" + count(cart) + " in cart)";
  });
});
