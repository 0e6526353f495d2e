// The demo checkout as a k6 browser script: the same clicks, waits and clean-up as
// Parcours' demo journey on desktop (bench.test_vs_k6). k6 1.1's selector engines lack
// :has-text() and text= here, so elements are found by XPath on their text.
import { browser } from 'k6/browser';
import { check } from 'k6';

export const options = {
  scenarios: { ui: { executor: 'shared-iterations', iterations: 1, vus: 1,
    options: { browser: { type: 'chromium' } } } },
};

export default async function () {
  const shop = __ENV.SHOP;
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  try {
    await page.goto(`${shop}/`);
    await page.locator('img[alt="Autumn collection"]').waitFor();
    try {
      await page.locator('//button[contains(., "Accept all")]').click({ timeout: 2000 });
    } catch (e) { /* the banner comes on some visits */ }
    await Promise.all([page.waitForNavigation(), page.locator('//a[contains(., "Trail Runner shoes")]').click()]);
    await page.locator('[data-testid="price"]').waitFor();
    await Promise.all([page.waitForNavigation(), page.locator('//button[contains(., "Add to cart")]').click()]);
    await page.locator('(//*[contains(text(), "1 item in your cart")])[1]').waitFor();
    await page.locator('input[value="express"]').check();
    await Promise.all([page.waitForNavigation(), page.locator('//button[contains(., "Place order")]').click()]);
    await page.locator('(//*[contains(text(), "Thank you for your order")])[1]').waitFor();
    await page.locator('(//*[contains(text(), "Express delivery")])[1]').waitFor();
    const order = (await page.locator('[data-testid="order-id"]').textContent()).match(/Order (\w+)/)[1];
    check(page, { 'order page': (p) => p.url().includes('/order/') });
    await page.goto(`${shop}/order/${order}`);
    await Promise.all([page.waitForNavigation(), page.locator('//button[contains(., "Cancel order")]').click()]);
    await page.locator('(//*[contains(text(), "is cancelled")])[1]').waitFor();
  } finally {
    await page.close();
    await context.close();
  }
}
